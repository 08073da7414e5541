"""Name -> method (``--distill NAME``): ``@register("fitnet", "hint")`` registers a class under its name and its
aliases (``distiller_dict`` holds every spelling); any spelling, in any case, resolves to the first name."""
from typing import Callable, Dict, List, Type

from topkd_io import TopKDError

distiller_dict: Dict[str, Type] = {}
_canonical: Dict[str, str] = {}  # lower-case spelling -> registered name


def register(name: str, *aliases: str) -> Callable[[Type], Type]:
    def wrap(cls: Type) -> Type:
        for spelling in (name, *aliases):
            if spelling.lower() in _canonical:
                raise ValueError(f"distiller name {spelling!r} registered twice")  # a bug in the method's code
            distiller_dict[spelling] = cls
            _canonical[spelling.lower()] = name
        return cls

    return wrap


def canonical_name(name: str) -> str:
    """Any registered spelling (any case) -> the registered name; unknown names unchanged."""
    return _canonical.get(str(name).lower(), str(name))


def method_names() -> List[str]:
    """Registered names (aliases left out), in registration order."""
    return list(dict.fromkeys(_canonical.values()))


def aliases_of(name: str) -> List[str]:
    return [s for s, c in _canonical.items() if c == name and s != name.lower()]


def get_distiller(name: str) -> Type:
    key = _canonical.get(str(name).lower())
    if key is None:
        raise TopKDError(f"unknown distillation method {name!r}; choose one of: {', '.join(sorted(method_names()))}")
    return distiller_dict[key]
