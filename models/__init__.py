"""Every architecture of the TopKD / TGD experiments under its official name.

``model_dict[name](num_classes=K, **options)`` builds a model; ``model(x)`` -> logits ``[B, K]``;
``load_model(path)`` rebuilds a trained network from ours or an official checkpoint (`models.loading`).
``model(x, is_feat=True)`` -> ``(feats, logits)`` with ``feats`` a list of stage outputs ending with the
pooled embedding ``[B, C]`` (the FC input); ``model.feat_dims`` lists each feature's channel width.
CIFAR nets default to 100 classes, ImageNet nets to 1000."""
from typing import List

import torch.nn as nn

from topkd_io import TopKDError

# importing the architectures registers them
from . import mobile_imagenet, mobilenetv2_cifar, resnet_cifar, resnet_imagenet, resnetv2_cifar  # noqa: F401
from . import shufflenet_cifar, vgg, wrn  # noqa: F401
from .loading import LoadedModel, load_model
from .registry import ARCH_ALIASES, ModelInfo, info_of, model_dict, model_info, register, resolve_arch

__all__ = ["model_dict", "model_info", "ModelInfo", "info_of", "register", "model_names", "build_model", "load_model",
           "LoadedModel", "resolve_arch", "ARCH_ALIASES"]


def model_names() -> List[str]:
    return sorted(model_dict)


def build_model(name: str, num_classes: int = None, in_channels: int = 3, **options) -> nn.Module:
    """Build architecture ``name`` (or an official alias of it, see ``ARCH_ALIASES``) for ``num_classes``
    classes and ``in_channels`` input channels (3, the default, is passed to no constructor, so networks
    without the option build too); unknown names and unsupported options raise `TopKDError`."""
    name = resolve_arch(name)
    if in_channels != 3:
        options["in_channels"] = in_channels
    try:
        return model_dict[name](num_classes=num_classes, **options)
    except TypeError as err:
        if options and "unexpected keyword argument" in str(err):
            raise TopKDError(f"architecture '{name}' does not accept option(s) {sorted(options)}: {err}") from None
        raise
