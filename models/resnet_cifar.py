"""CIFAR ResNets of the RepDistiller / TopKD zoo (resnet8 ... resnet200, resnet110x2, resnet8x4 ...).

Three stages of basic blocks on a 3x3 stem; depth = 6n + 2; adaptive pooling (inputs of at least 4x4 pixels).
Features: [stem ReLU output, layer1, layer2, layer3, pooled embedding]."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import FeatureForward, check_in_channels, init_conv_bn, pool_flatten
from .registry import register_variants


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with an identity (or 1x1 conv-BN ``downsample``) shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.relu = nn.ReLU()  # the final activation (its input: the block's pre-ReLU output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CifarResNet(FeatureForward, nn.Module):
    """ResNet for small images. depth: 6n + 2; num_filters: [stem, stage1, stage2, stage3] widths."""

    def __init__(self, depth: int, num_filters: Sequence[int], num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (8, 14, 20, ...), got {depth}")
        n = (depth - 2) // 6
        in_channels = check_in_channels(in_channels)
        self.conv1 = nn.Conv2d(in_channels, num_filters[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self._in_planes = num_filters[0]
        self.layer1 = self._make_layer(num_filters[1], n, 1)
        self.layer2 = self._make_layer(num_filters[2], n, 2)
        self.layer3 = self._make_layer(num_filters[3], n, 2)
        self.fc = nn.Linear(num_filters[3], num_classes)
        self.feat_dims = [num_filters[0], num_filters[1], num_filters[2], num_filters[3], num_filters[3]]
        init_conv_bn(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(BasicBlock(self._in_planes, planes, stride if i == 0 else 1))
            self._in_planes = planes
        return nn.Sequential(*layers)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [f0, f1, f2, f3, pool_flatten(f3)]

    def preact_points(self):
        return [(None, None)] + [(layer[-1].relu, layer[-1].bn2) for layer in (self.layer1, self.layer2, self.layer3)]


_BASE = [16, 16, 32, 64]
_X2 = [16, 32, 64, 128]
_X4 = [32, 64, 128, 256]

VARIANTS = {f"resnet{d}": dict(depth=d, num_filters=_BASE) for d in (8, 14, 20, 32, 44, 56, 110, 116, 200)}
VARIANTS["resnet110x2"] = dict(depth=110, num_filters=_X2)
VARIANTS.update({f"resnet{d}x4": dict(depth=d, num_filters=_X4) for d in (8, 20, 26, 32, 44, 56, 110)})

register_variants(VARIANTS, CifarResNet)
