"""ImageNet mobile nets: ``MobileNetV1`` (the ResNet-50 -> MobileNet student, ~4.2M params at 1000 classes),
``mobilenetv2_imagenet`` and ``shufflev2_imagenet`` (torchvision's modules and keys; its weights load strictly)."""
from typing import List

import torch
import torch.nn as nn
from torchvision.models import mobilenetv2 as tv_mobilenetv2
from torchvision.models import shufflenetv2 as tv_shufflenetv2

from .common import FeatureForward, init_conv_bn, pool_flatten
from .registry import register_variants


def _conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


def _conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True),
    )


# (in, out, stride) of the 13 depthwise-separable layers after the stride-2 stem
_V1_LAYERS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
              (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 512, 1), (512, 1024, 2),
              (1024, 1024, 1)]
# model[a:b] slices ending each feature stage (resolution /4, /8, /16, /32)
_V1_STAGES = [(0, 4), (4, 6), (6, 12), (12, 14)]


class MobileNetV1(FeatureForward, nn.Module):
    """MobileNet V1 (width 1.0): ``model`` (stem + 13 separable layers) and ``fc``."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.model = nn.Sequential(_conv_bn(3, 32, 2), *[_conv_dw(i, o, s) for i, o, s in _V1_LAYERS])
        self.fc = nn.Linear(1024, num_classes)
        self.feat_dims = [128, 256, 512, 1024, 1024]
        init_conv_bn(self)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats, out = [], x
        for a, b in _V1_STAGES:
            out = self.model[a:b](out)
            feats.append(out)
        feats.append(pool_flatten(out))
        return feats

    def preact_points(self):
        return [(self.model[b - 1][-1], self.model[b - 1][-2]) for _, b in _V1_STAGES]


class ImageNetMobileNetV2(FeatureForward, tv_mobilenetv2.MobileNetV2):
    """torchvision's MobileNetV2 (width 1.0). Features end at ``features`` indices 1, 3, 6, 13, 18, then pooled."""

    head, _ENDS = "classifier", (2, 4, 7, 14, 19)

    def __init__(self, num_classes: int = 1000, **tv_options):
        super().__init__(num_classes=num_classes, **tv_options)
        self.feat_dims = [self.features[e - 1].out_channels for e in self._ENDS] + [self.last_channel]

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats, start, out = [], 0, x
        for end in self._ENDS:
            out = self.features[start:end](out)
            feats.append(out)
            start = end
        feats.append(pool_flatten(out))
        return feats

    def preact_points(self):
        """Linear bottlenecks end the first four maps (``bn``: their last BN); the last ends with ReLU6."""
        last = self.features[self._ENDS[-1] - 1]
        return ([(None, None)] + [(None, self.features[e - 1].conv[-1]) for e in self._ENDS[1:-1]]
                + [(last[2], last[1])])


class ImageNetShuffleNetV2(FeatureForward, tv_shufflenetv2.ShuffleNetV2):
    """torchvision's ShuffleNetV2 x1.0. Features: [stem after max-pool, stage2, stage3, stage4, conv5, pooled]."""

    def __init__(self, num_classes: int = 1000):
        super().__init__([4, 8, 4], [24, 116, 232, 464, 1024], num_classes=num_classes)
        self.feat_dims = [24, 116, 232, 464, 1024, 1024]

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = [self.maxpool(self.conv1(x))]
        for stage in (self.stage2, self.stage3, self.stage4, self.conv5):
            feats.append(stage(feats[-1]))
        feats.append(pool_flatten(feats[-1]))
        return feats

    def preact_points(self):
        """The stages end with a channel shuffle (nothing before it is the whole map); conv5 ends with BN-ReLU."""
        return [(None, None)] * 4 + [(self.conv5[2], self.conv5[1])]


# small_lr: the MobileNet/ShuffleNet learning-rate rule (it applies under recipes that define small_arch_lr)
register_variants({"MobileNetV1": {}}, MobileNetV1, small_lr=True)
register_variants({"mobilenetv2_imagenet": {}}, ImageNetMobileNetV2, small_lr=True)
register_variants({"shufflev2_imagenet": {}}, ImageNetShuffleNetV2, small_lr=True)
