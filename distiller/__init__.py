"""Distillation methods behind one contract (`distiller.base.Distiller`) and one registry (`distiller.registry`).

Each method module registers its classes with ``@register(name, *aliases)``, which declare their options,
defaults, data needs and run tag (`distiller.options`, docs/ADDING.md); importing this package imports them all.
TopKD's topology term (`distiller.topkd.TopologyTerm`) is no method: `train_student.py` attaches it to the
chosen one (``distiller.topology``)."""
from .base import Distiller, Losses  # registers "vanilla"
from .registry import aliases_of, canonical_name, distiller_dict, get_distiller, method_names, register
from . import baselines, crd, tgd, zoo  # noqa: F401,E402  (each registers its methods)

__all__ = ["Distiller", "Losses", "distiller_dict", "get_distiller", "register", "canonical_name", "method_names",
           "aliases_of"]
