"""The architecture registry: official name -> constructor ``f(num_classes=..., **options) -> nn.Module``,
and what each architecture declares about itself (`ModelInfo`)."""
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch.nn as nn

from topkd_io import TopKDError

model_dict: Dict[str, Callable[..., nn.Module]] = {}


@dataclass(frozen=True)
class ModelInfo:
    """What an architecture declares when it registers. ``small_lr``: trained with the recipe's small-network
    learning rate (``small_arch_lr``: 0.01 in the CIFAR recipe, the official rule for MobileNetV2 and ShuffleNet)
    unless ``--lr`` is given."""

    small_lr: bool = False


model_info: Dict[str, ModelInfo] = {}


def register(*names: str, small_lr: bool = False):
    def wrap(fn):
        for name in names:
            if name in model_dict:
                raise ValueError(f"architecture '{name}' is registered twice; rename one of them")
            model_dict[name] = fn
            model_info[name] = ModelInfo(small_lr=small_lr)
        return fn

    return wrap


def register_variants(variants: Dict[str, dict], factory: Callable[..., nn.Module], small_lr: bool = False):
    """Register ``name -> factory(**fixed_options, **user_options)`` for each entry of `variants`."""
    for name, fixed in variants.items():
        def build(num_classes: Optional[int] = None, _fixed=fixed, **options):
            if num_classes is not None:
                options["num_classes"] = num_classes
            return factory(**_fixed, **options)

        build.__name__ = name
        build.__doc__ = f"{name}: {factory.__name__}(**{fixed})"
        register(name, small_lr=small_lr)(build)


# Other spellings of our architectures in the official code bases -> our registry name. RepDistiller (and
# mdistiller) call the CIFAR students MobileNetV2 (width 0.5), ShuffleV1 and ShuffleV2; TopKD's own code
# uses the lower-case names we register. Exact spellings only: 'ResNet50' (CIFAR) and 'resnet50'
# (ImageNet) are different networks, so names are never matched case-insensitively.
ARCH_ALIASES: Dict[str, str] = {"MobileNetV2": "mobilenetv2", "ShuffleV1": "shufflev1", "ShuffleV2": "shufflev2"}


def resolve_arch(name: str, option: Optional[str] = None) -> str:
    """Registry name of ``name`` or of its official alias (checked before any data loads); `TopKDError` else."""
    if name in model_dict or name in ARCH_ALIASES:
        return ARCH_ALIASES.get(name, name)
    aliases = ", ".join(f"{a} (= {t})" for a, t in ARCH_ALIASES.items())
    raise TopKDError(f"unknown architecture {name!r}{f' ({option})' if option else ''}; choose one of: "
                     f"{', '.join(sorted(model_dict))} (also accepted: {aliases})")


def info_of(name: str) -> Optional[ModelInfo]:
    """The `ModelInfo` of a registered architecture or official alias; None for unknown names."""
    return model_info.get(ARCH_ALIASES.get(name, name))
