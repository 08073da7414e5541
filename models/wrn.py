"""Wide ResNets for CIFAR (wrn_16_1, wrn_16_2, wrn_16_3, wrn_40_1, wrn_40_2), pre-activation blocks.

depth = 6n + 4; widths [16, 16k, 32k, 64k]; TGD's PI teacher is ``wrn_16_3`` with ``in_channels=6`` (50x50).
Features: [stem conv output, block1, block2, block3, pooled embedding after the final BN-ReLU]."""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import FeatureForward, check_in_channels, init_conv_bn, pool_flatten
from .registry import register_variants


class WideBasic(nn.Module):
    """BN-ReLU-conv3x3 twice; a 1x1 ``convShortcut`` on the activated input when the width or stride changes."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.relu1 = nn.ReLU()  # its input, bn1(x), is the pre-ReLU form of the block's input
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(act)))
        out = self.conv2(out)
        shortcut = x if self.equal_in_out else self.convShortcut(act)
        return out + shortcut


class NetworkBlock(nn.Module):
    """A stage of ``n`` WideBasic blocks held in ``self.layer`` (the official key layout)."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasic(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(FeatureForward, nn.Module):
    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4 (10, 16, 22, 28, 40, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(check_in_channels(in_channels), widths[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(widths[3], num_classes)
        self.feat_dims = widths + [widths[3]]
        init_conv_bn(self)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        f0 = self.conv1(x)
        f1 = self.block1(f0)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        return [f0, f1, f2, f3, pool_flatten(self.relu(self.bn1(f3)))]

    def preact_points(self):
        """Pre-activation blocks: a stage's map is activated by the next block's BN-ReLU (the last by the final
        ``bn1``-``relu``), so its pre-ReLU form is that BN's output (as in RepDistiller's and mdistiller's WRN)."""
        nxt = [self.block2.layer[0], self.block3.layer[0]]
        return [(None, None)] + [(b.relu1, b.bn1) for b in nxt] + [(self.relu, self.bn1)]


VARIANTS = {f"wrn_{d}_{k}": dict(depth=d, widen_factor=k) for d, k in [(16, 1), (16, 2), (16, 3), (40, 1), (40, 2)]}
register_variants(VARIANTS, WideResNet)
