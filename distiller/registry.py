"""Name -> Distiller class registry (``--distill NAME`` on the command line)."""
from __future__ import annotations

from typing import Callable, Dict, Type

distiller_dict: Dict[str, Type] = {}


def register(name: str) -> Callable[[Type], Type]:
    """Class decorator: ``@register("kd")`` makes the class available as ``distiller_dict["kd"]``."""

    def wrap(cls: Type) -> Type:
        if name in distiller_dict:
            raise ValueError(f"distiller name {name!r} registered twice")
        distiller_dict[name] = cls
        return cls

    return wrap


def get_distiller(name: str) -> Type:
    try:
        return distiller_dict[name]
    except KeyError:
        raise ValueError(
            f"unknown distillation method {name!r}; choose one of: {', '.join(sorted(distiller_dict))}"
        ) from None
