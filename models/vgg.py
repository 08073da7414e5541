"""VGG with BatchNorm for CIFAR (vgg8, vgg11, vgg13, vgg16, vgg19), the RepDistiller layout.

Five conv blocks; 2x2 max-pools after blocks 0-2 (and 3 for 64x64 inputs), then adaptive average pooling.
Features: [block0 .. block4 outputs after ReLU, pooled embedding]."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from topkd_io import TopKDError

from .common import FeatureForward, check_in_channels, init_conv_bn, pool_flatten
from .registry import register_variants

# widths of the conv layers in each of the five blocks
CONFIGS = {
    "S": [[64], [128], [256], [512], [512]],
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _block(in_ch: int, widths: Sequence[int]) -> nn.Sequential:
    """conv3x3(bias)-BN-ReLU per width."""
    layers = []
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_ch = w
    return nn.Sequential(*layers)


class VGG(FeatureForward, nn.Module):
    head = "classifier"

    def __init__(self, cfg: str, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        widths = CONFIGS[cfg]
        in_ch = check_in_channels(in_channels)
        for i, block_widths in enumerate(widths):
            setattr(self, f"block{i}", _block(in_ch, block_widths))
            in_ch = block_widths[-1]
        self.classifier = nn.Linear(512, num_classes)
        self.feat_dims = [w[-1] for w in widths] + [512]
        init_conv_bn(self, linear_std=0.01)

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        if min(x.shape[-2:]) < 8:
            raise TopKDError(f"VGG needs inputs of at least 8x8 pixels, got {tuple(x.shape[-2:])}")
        tall = x.shape[2] == 64
        feats, out = [], x
        for i in range(5):
            out = getattr(self, f"block{i}")(out)
            feats.append(out)
            if i < 3 or (i == 3 and tall):
                out = F.max_pool2d(out, 2, 2)
        feats.append(pool_flatten(out))
        return feats

    def preact_points(self):
        return [(None, None)] + [(getattr(self, f"block{i}")[-1], getattr(self, f"block{i}")[-2]) for i in range(1, 5)]


VARIANTS = {"vgg8": dict(cfg="S"), "vgg11": dict(cfg="A"), "vgg13": dict(cfg="B"),
            "vgg16": dict(cfg="D"), "vgg19": dict(cfg="E")}
register_variants(VARIANTS, VGG)
