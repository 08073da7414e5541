"""RepDistiller's and mdistiller's other baselines, one file per method (each registers itself on import); the
contract they follow is `distiller.teacher_student.TeacherStudent` (docs/ADDING.md)."""
from . import ofd  # noqa: F401
from . import reviewkd  # noqa: F401
