"""RepDistiller's and mdistiller's other baselines, one file per method (each registers itself on import); the
contract they follow is `distiller.teacher_student.TeacherStudent` (docs/ADDING.md)."""
from . import ab, fsp, ft  # noqa: F401,E402  (AB, FSP, FT: each registers itself; pretrain.py is their stage)
