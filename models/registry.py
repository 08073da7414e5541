"""The architecture registry: official name -> constructor ``f(num_classes=..., **options) -> nn.Module``."""
from typing import Callable, Dict, Optional

import torch.nn as nn

model_dict: Dict[str, Callable[..., nn.Module]] = {}


def register(*names: str):
    """Decorator adding a constructor to `model_dict` under each of `names`."""

    def wrap(fn):
        for name in names:
            if name in model_dict:
                raise ValueError(f"architecture '{name}' is registered twice; rename one of them")
            model_dict[name] = fn
        return fn

    return wrap


def register_variants(variants: Dict[str, dict], factory: Callable[..., nn.Module]):
    """Register ``name -> factory(**fixed_options, **user_options)`` for each entry of `variants`.

    Leaving ``num_classes`` out uses the factory's default (100 for CIFAR nets, 1000 for ImageNet nets).
    """
    for name, fixed in variants.items():
        def build(num_classes: Optional[int] = None, _fixed=fixed, **options):
            if num_classes is not None:
                options["num_classes"] = num_classes
            return factory(**_fixed, **options)

        build.__name__ = name
        build.__doc__ = f"{name}: {factory.__name__}(**{fixed})"
        register(name)(build)
