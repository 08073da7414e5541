"""A model added the way docs/ADDING.md says, from this file alone: a small pre-activation ResNet
(He et al., "Identity Mappings in Deep Residual Networks": BN-ReLU before each convolution).
`tests/test_extensions.py` registers it and runs it through the stage scripts.
"""
from typing import List

import torch
from torch import nn

from models.common import FeatureForward, check_in_channels, init_conv_bn, pool_flatten
from models.registry import register


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus the identity (a 1x1 convolution when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out
                         else nn.Identity())

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if not isinstance(self.shortcut, nn.Identity) else x
        out = self.conv1(out)
        return self.conv2(torch.relu(self.bn2(out))) + skip


class PreActResNet(FeatureForward, nn.Module):
    """stem conv -> one pre-activation block per width (the later ones halve the resolution) -> BN-ReLU,
    pool, linear. feats = [stem, block 1, ..., block S, pooled]."""

    def __init__(self, widths=(8, 16, 32), num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        check_in_channels(in_channels)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.blocks = nn.ModuleList(PreActBlock(a, b, 1 if i == 0 else 2)
                                    for i, (a, b) in enumerate(zip((widths[0],) + tuple(widths[:-1]), widths)))
        self.bn = nn.BatchNorm2d(widths[-1])
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feat_dims = [widths[0], *widths, widths[-1]]
        init_conv_bn(self)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = [self.conv1(x)]
        for block in self.blocks:
            feats.append(block(feats[-1]))
        return feats + [pool_flatten(torch.relu(self.bn(feats[-1])))]


@register("toy_preact")
def toy_preact(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    return PreActResNet((8, 16, 32), num_classes=num_classes, in_channels=in_channels)
