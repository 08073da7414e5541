"""ShuffleNet V1 (``shufflev1``, 3 groups) and V2 (``shufflev2``, ``shufflev2_1_5``) for CIFAR (RepDistiller layout).

1x1 stride-1 stem to 24 channels, three stages each halving the resolution, adaptive average pooling.
Features: [stem ReLU output, stage1, stage2, stage3, pooled embedding]."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import FeatureForward, pool_flatten
from .registry import register_variants


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, C, H, W]``: interleave the ``groups`` channel groups (C divisible by groups)."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleV1Unit(nn.Module):
    """Grouped 1x1 - shuffle - depthwise 3x3 - grouped 1x1; stride 2 concatenates an avg-pooled shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int):
        super().__init__()
        mid = out_planes // 4
        self.first_groups = 1 if in_planes == 24 else groups
        self.stride = stride
        self.conv1 = nn.Conv2d(in_planes, mid, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU()  # the final activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            return self.relu(torch.cat([out, F.avg_pool2d(x, 3, 2, 1)], 1))
        return self.relu(out + x)


class ShuffleNetV1(FeatureForward, nn.Module):
    head = "linear"

    def __init__(self, out_planes: Sequence[int], num_blocks: Sequence[int], groups: int, num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self._in_planes = 24
        self.layer1 = self._make_layer(out_planes[0], num_blocks[0], groups)
        self.layer2 = self._make_layer(out_planes[1], num_blocks[1], groups)
        self.layer3 = self._make_layer(out_planes[2], num_blocks[2], groups)
        self.linear = nn.Linear(out_planes[2], num_classes)
        self.feat_dims = [24, *out_planes, out_planes[2]]

    def _make_layer(self, out_planes: int, blocks: int, groups: int) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            # the first unit concatenates its input, so its own branch makes out_planes - in_planes channels
            branch = out_planes - self._in_planes if i == 0 else out_planes
            layers.append(ShuffleV1Unit(self._in_planes, branch, 2 if i == 0 else 1, groups))
            self._in_planes = out_planes
        return nn.Sequential(*layers)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = [F.relu(self.bn1(self.conv1(x)))]
        for layer in (self.layer1, self.layer2, self.layer3):
            feats.append(layer(feats[-1]))
        feats.append(pool_flatten(feats[-1]))
        return feats

    def preact_points(self):
        """The sum (or concatenation) before each stage's last ReLU; no single BN stands before it."""
        return [(None, None)] + [(layer[-1].relu, None) for layer in (self.layer1, self.layer2, self.layer3)]


class ShuffleV2Unit(nn.Module):
    """Split channels in half; the second half goes 1x1 - depthwise 3x3 - 1x1; concatenate; shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv1 = nn.Conv2d(half, half, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, half, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep, x2 = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([keep, out], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: left = depthwise 3x3 s2 - 1x1; right = 1x1 - depthwise 3x3 s2 - 1x1; concatenate; shuffle."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(FeatureForward, nn.Module):
    """ShuffleNet V2. ``out_channels``: three stage widths and the final 1x1 width."""

    head = "linear"

    def __init__(self, out_channels: Sequence[int], num_blocks: Sequence[int], num_classes: int = 100):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        in_ch = 24
        for i in range(3):
            stage = [ShuffleV2Down(in_ch, out_channels[i])] + [ShuffleV2Unit(out_channels[i]) for _ in range(num_blocks[i])]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            in_ch = out_channels[i]
        self.conv2 = nn.Conv2d(in_ch, out_channels[3], 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)
        self.feat_dims = [24, *out_channels[:3], out_channels[3]]

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = [F.relu(self.bn1(self.conv1(x)))]
        for layer in (self.layer1, self.layer2, self.layer3):
            feats.append(layer(feats[-1]))
        feats.append(pool_flatten(F.relu(self.bn2(self.conv2(feats[-1])))))
        return feats


# the official code trains ShuffleNet students at lr 0.01
register_variants({"shufflev1": dict(out_planes=(240, 480, 960), num_blocks=(4, 8, 4), groups=3)}, ShuffleNetV1,
                  small_lr=True)
register_variants({
    "shufflev2": dict(out_channels=(116, 232, 464, 1024), num_blocks=(3, 7, 3)),
    "shufflev2_1_5": dict(out_channels=(176, 352, 704, 1024), num_blocks=(3, 7, 3)),
}, ShuffleNetV2, small_lr=True)
