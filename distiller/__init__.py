"""Distillation methods behind one contract (see `distiller.base.Distiller`) and one registry.

Each method module registers itself with ``@register(name)``; importing this package imports them all.
"""
from .base import Distiller, Losses
from .registry import distiller_dict, get_distiller, register
from . import vanilla  # noqa: F401  (registers "vanilla")
from . import tgd  # noqa: F401
from . import logit_methods  # noqa: F401  (kd, dkd)
from . import feature_methods  # noqa: F401  (hint/fitnet, attention/at, similarity/sp, rkd, pkt)
from . import crd  # noqa: F401  (crd)
from .topkd import attach_topology

__all__ = ["Distiller", "Losses", "distiller_dict", "get_distiller", "register", "attach_topology"]
