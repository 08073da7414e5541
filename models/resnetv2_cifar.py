"""ResNet-50 for CIFAR (``ResNet50``; RepDistiller's resnetv2): bottleneck blocks on a 3x3 stride-1 stem.

Features: [stem ReLU output, layer1 .. layer4, pooled embedding (2048)]."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import FeatureForward, check_in_channels, init_conv_bn, pool_flatten
from .registry import register_variants


class Bottleneck(nn.Module):
    """1x1 - 3x3(stride) - 1x1 (x4) conv-BN; ``shortcut`` is a 1x1 conv-BN when the shape changes."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_planes))
        self.relu = nn.ReLU()  # the final activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class CifarBottleneckResNet(FeatureForward, nn.Module):
    """Four stages of bottlenecks (64, 128, 256, 512 x4)."""

    head = "linear"

    def __init__(self, num_blocks: Sequence[int], num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(check_in_channels(in_channels), 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self._in_planes = 64
        self.layer1 = self._make_layer(64, num_blocks[0], 1)
        self.layer2 = self._make_layer(128, num_blocks[1], 2)
        self.layer3 = self._make_layer(256, num_blocks[2], 2)
        self.layer4 = self._make_layer(512, num_blocks[3], 2)
        self.linear = nn.Linear(512 * Bottleneck.expansion, num_classes)
        self.feat_dims = [64, 256, 512, 1024, 2048, 2048]
        init_conv_bn(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(Bottleneck(self._in_planes, planes, stride if i == 0 else 1))
            self._in_planes = planes * Bottleneck.expansion
        return nn.Sequential(*layers)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = [F.relu(self.bn1(self.conv1(x)))]
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            feats.append(layer(feats[-1]))
        feats.append(pool_flatten(feats[-1]))
        return feats

    def preact_points(self):
        layers = (self.layer1, self.layer2, self.layer3, self.layer4)
        return [(None, None)] + [(layer[-1].relu, layer[-1].bn3) for layer in layers]


register_variants({"ResNet50": dict(num_blocks=(3, 4, 6, 3))}, CifarBottleneckResNet)
