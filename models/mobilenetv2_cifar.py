"""MobileNetV2 for CIFAR (RepDistiller's layout): ``mobilenetv2`` (width 0.5) and ``mobilenetv2_1_0``.

Stride-2 3x3 stem, seven inverted-residual stages (expansion 6, CIFAR strides 1,1,2,2,1,2,1), a 1x1 conv to
1280, adaptive average pooling.
Features: [stem, after stage 2, stage 3, stage 5, stage 7, pooled embedding (1280)]."""
from typing import List

import math

import torch
import torch.nn as nn

from .common import FeatureForward, pool_flatten
from .registry import register_variants

# (expansion t, output channels c, repeats n, first stride s); t=None means the model's expansion
STAGES = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2),
          (None, 96, 3, 1), (None, 160, 3, 2), (None, 320, 1, 1)]


def _conv_bn_relu(inp: int, oup: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expand - 3x3 depthwise(stride) - 1x1 project, as ``conv`` indices 0..7; identity add when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res else out


class CifarMobileNetV2(FeatureForward, nn.Module):
    """MobileNetV2(expansion T, width_mult) for 3-channel inputs."""

    head = "classifier"

    def __init__(self, expansion: int = 6, width_mult: float = 0.5, num_classes: int = 100):
        super().__init__()
        in_ch = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(3, in_ch, 3, 2)
        blocks = []
        widths = []
        for t, c, n, s in STAGES:
            t = t or expansion
            out_ch = int(c * width_mult)
            stage = []
            for i in range(n):
                stage.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
            blocks.append(nn.Sequential(*stage))
            widths.append(out_ch)
        self.blocks = nn.Sequential(*blocks)
        self.last_channel = 1280 if width_mult <= 1.0 else int(1280 * width_mult)
        self.conv2 = _conv_bn_relu(in_ch, self.last_channel, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        self.feat_dims = [int(32 * width_mult), widths[1], widths[2], widths[4], widths[6], self.last_channel]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        f0 = self.conv1(x)
        f1 = self.blocks[1](self.blocks[0](f0))
        f2 = self.blocks[2](f1)
        f3 = self.blocks[4](self.blocks[3](f2))
        f4 = self.blocks[6](self.blocks[5](f3))
        return [f0, f1, f2, f3, f4, pool_flatten(self.conv2(f4))]

    def preact_points(self):
        """Linear bottlenecks: the stage maps end without an activation; ``bn``: each stage's last BN."""
        return [(None, None)] + [(None, self.blocks[k][-1].conv[-1]) for k in (1, 2, 4, 6)]


VARIANTS = {"mobilenetv2": dict(expansion=6, width_mult=0.5), "mobilenetv2_1_0": dict(expansion=6, width_mult=1.0)}
# the official code trains MobileNetV2 students at lr 0.01
register_variants(VARIANTS, CifarMobileNetV2, small_lr=True)
