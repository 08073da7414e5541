"""RepDistiller's and mdistiller's other baselines, one file per method (each registers itself on import); the
contract they follow is `distiller.teacher_student.TeacherStudent` (docs/ADDING.md)."""
from . import ab, cc, fsp, ft, kdsvd, nst, ofd, reviewkd, vid  # noqa: F401
