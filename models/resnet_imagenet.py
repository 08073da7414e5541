"""ImageNet ResNets with torchvision's modules and state-dict keys (torchvision weights load strictly).

``resnet18/34/50/101``, ``resnext50_32x4d``, ``wrn_50_2`` (= torchvision's wide_resnet50_2) and the wide
basic-block nets ``wrn_10_2/18_2/34_2`` (every basic block twice as wide, as in the official zoo).
Features: [stem after max-pool, layer1 .. layer4, pooled embedding]."""
from typing import List, Optional, Sequence, Type

import torch
import torch.nn as nn
from torchvision.models import resnet as tv_resnet

from .common import FeatureForward, pool_flatten
from .registry import register_variants


class WideBasicBlock(nn.Module):
    """A torchvision-style basic block whose width is ``planes * base_width / 64``; ``expansion = 2`` so
    torchvision's ResNet builds shortcuts and the head for the doubled width (base_width must be 128)."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 128, dilation: int = 1, norm_layer=None):
        super().__init__()
        width = planes * base_width // 64
        if groups != 1 or dilation != 1 or width != planes * self.expansion:
            raise ValueError("WideBasicBlock supports groups=1, dilation=1 and width_per_group=128 only")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = nn.Conv2d(inplanes, width, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ImageNetResNet(FeatureForward, tv_resnet.ResNet):
    """torchvision's ResNet with the uniform forward. Input ``[B, 3, H, W]`` (224 by design) -> ``[B, K]``."""

    def __init__(self, block: Type[nn.Module], layers: Sequence[int], num_classes: int = 1000, **tv_options):
        super().__init__(block, list(layers), num_classes=num_classes, **tv_options)
        e = block.expansion
        self.feat_dims = [64, 64 * e, 128 * e, 256 * e, 512 * e, 512 * e]

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = [self.maxpool(self.relu(self.bn1(self.conv1(x))))]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            feats.append(layer(feats[-1]))
        feats.append(pool_flatten(feats[-1]))
        return feats

    def preact_points(self):
        """Each stage's last block activates its sum with ``relu`` (called last); ``bn``: its last BN."""
        last = [layer[-1] for layer in (self.layer1, self.layer2, self.layer3, self.layer4)]
        return [(None, None)] + [(b.relu, getattr(b, "bn3", b.bn2)) for b in last]


_BASIC, _BOTTLE = tv_resnet.BasicBlock, tv_resnet.Bottleneck
VARIANTS = {
    "resnet18": dict(block=_BASIC, layers=(2, 2, 2, 2)),
    "resnet34": dict(block=_BASIC, layers=(3, 4, 6, 3)),
    "resnet50": dict(block=_BOTTLE, layers=(3, 4, 6, 3)),
    "resnet101": dict(block=_BOTTLE, layers=(3, 4, 23, 3)),
    "resnext50_32x4d": dict(block=_BOTTLE, layers=(3, 4, 6, 3), groups=32, width_per_group=4),
    "wrn_50_2": dict(block=_BOTTLE, layers=(3, 4, 6, 3), width_per_group=128),
    "wrn_10_2": dict(block=WideBasicBlock, layers=(1, 1, 1, 1), width_per_group=128),
    "wrn_18_2": dict(block=WideBasicBlock, layers=(2, 2, 2, 2), width_per_group=128),
    "wrn_34_2": dict(block=WideBasicBlock, layers=(3, 4, 6, 3), width_per_group=128),
}
register_variants(VARIANTS, ImageNetResNet)
