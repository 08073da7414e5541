"""Distillation methods behind one contract (see `distiller.base.Distiller`) and one registry.

Each method module registers itself with ``@register(name, *aliases)`` and declares its command-line
options, defaults, data needs (`prepare` / `from_config`) and run tag on its class (`distiller.options`,
`docs/ADDING.md`); importing this package imports them all: one import line below per method module.
TopKD's topology term (`distiller.topkd.TopologyTerm`) is no method: `train_student.py` attaches it to
the chosen one (``distiller.topology``).
"""
from .base import Distiller, Losses
from .registry import aliases_of, canonical_name, distiller_dict, get_distiller, method_names, register
from . import vanilla  # noqa: F401  (registers "vanilla")
from . import tgd  # noqa: F401
from . import logit_methods  # noqa: F401  (kd, dkd)
from . import feature_methods  # noqa: F401  (fitnet/hint, at/attention, sp/similarity, rkd, pkt)
from . import crd  # noqa: F401  (crd)
from . import topkd_hints  # noqa: F401  (hint_l2, hint_kd: the official TopKD's --distill hint_L2 / hint_KD)

__all__ = ["Distiller", "Losses", "distiller_dict", "get_distiller", "register", "canonical_name", "method_names",
           "aliases_of"]
