"""Pieces shared by every architecture: the uniform forward and adaptive pooling."""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


def pool_flatten(x: torch.Tensor) -> torch.Tensor:
    """Global average pool: ``[B, C, H, W]`` -> ``[B, C]`` (any H, W)."""
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


class FeatureForward:
    """Mixin giving every model the same forward.

    Subclasses implement ``extract_features(x)`` (list of stage outputs ending with the pooled
    embedding ``[B, C]``) and ``classify(embedding)`` (logits ``[B, K]``), and set ``feat_dims``
    (channel width of each feature). Put this mixin first among the bases so its forward wins.
    """

    feat_dims: List[int]

    def extract_features(self, x: torch.Tensor) -> List[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, is_feat: bool = False):
        """``x`` ``[B, C_in, H, W]`` -> logits ``[B, K]``, or ``(feats, logits)`` when ``is_feat``."""
        feats = self.extract_features(x)
        logits = self.classify(feats[-1])
        return (feats, logits) if is_feat else logits


def init_conv_bn(module: nn.Module, linear_std: float = None) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions, BatchNorm to (1, 0), zero linear biases.

    ``linear_std``: if given, linear weights are drawn from N(0, linear_std^2); otherwise PyTorch's default.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_in_channels(in_channels: int) -> int:
    """Validate the ``in_channels`` option (number of input image channels)."""
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    return in_channels
