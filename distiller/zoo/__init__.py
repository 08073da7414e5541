"""RepDistiller's and mdistiller's other baselines, one file per method (each registers itself on import); the
contract they follow is `distiller.teacher_student.TeacherStudent` (docs/ADDING.md)."""
from . import cc  # noqa: F401
from . import kdsvd  # noqa: F401
from . import nst  # noqa: F401
from . import vid  # noqa: F401
