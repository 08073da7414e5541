"""Pieces shared by every architecture (the uniform forward, pooling, initialisation), and reading one layer of
a model's ``feats`` as per-sample vectors: the points of a point cloud, for stage 2 (the RipsNet's training
clouds) and stage 4 (the topology term) alike, so the RipsNet sees the distribution it was trained on."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from topkd_io import TopKDError


def pool_flatten(x: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


class FeatureForward:
    """Mixin (first among the bases) giving every model the same forward. Subclasses implement
    ``extract_features(x)`` (stage outputs ending with the pooled embedding ``[B, C]``), set ``feat_dims`` (the
    channel width of each feature) and name their classifier module ``head`` (or override ``classify``)."""

    feat_dims: List[int]
    head = "fc"

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:  # [B, C] -> logits [B, K]
        return getattr(self, self.head)(embedding)

    def preact_points(self) -> List[Tuple[Optional[nn.Module], Optional[nn.Module]]]:
        """One ``(activation, bn)`` pair per map of ``feats`` (every entry but the embedding). ``activation``: the
        module whose (last) input is the map before its final activation, or None where the map is returned as it
        is (the stem, as RepDistiller's ``preact`` keeps it, and maps that end without one). ``bn``: the BatchNorm
        standing before that activation, whose scale and shift OFD reads (None: there is none). Default: none."""
        return [(None, None)] * (len(self.feat_dims) - 1)

    def forward(self, x: torch.Tensor, is_feat: bool = False, preact: bool = False):
        """``x`` ``[B, C_in, H, W]`` -> logits ``[B, K]``, or ``(feats, logits)`` when ``is_feat``; with
        ``preact`` the maps that `preact_points` names are taken before their final activation."""
        feats = self._preact_features(x) if preact else self.extract_features(x)
        logits = self.classify(feats[-1])
        return (feats, logits) if is_feat else logits

    def _preact_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        taken = {}
        hooks = [act.register_forward_pre_hook(lambda m, args, i=i: taken.__setitem__(i, args[0].clone()))
                 for i, (act, _) in enumerate(self.preact_points()) if act is not None]  # clone: ReLU(inplace)
        try:
            feats = self.extract_features(x)
        finally:
            for hook in hooks:
                hook.remove()
        return [taken.get(i, f) for i, f in enumerate(feats)]


def init_conv_bn(module: nn.Module, linear_std: float = None) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions, BatchNorm to (1, 0), zero linear biases; linear weights from
    N(0, linear_std^2) when ``linear_std`` is given (else PyTorch's default)."""
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
    if not isinstance(in_channels, int) or in_channels < 1:
        raise TopKDError(f"in_channels must be a positive int, got {in_channels!r}")
    return in_channels


def check_layer(index: int, n: int, flag: str = "--layer", who: str = "teacher") -> int:
    """A (possibly negative) index into a feats list of ``n`` entries -> the index in ``[0, n)``."""
    if not -n <= index < n:
        raise TopKDError(f"{flag} {index} is out of range: the {who} has {n} feature stages, use -1 (the FC "
                         f"input) or an index in [{-n}, {n - 1}]")
    return index % n


def layer_embedding(feats: Sequence[torch.Tensor], layer: int) -> torch.Tensor:
    """Entry ``layer`` of ``feats`` as ``[B, C]``: maps ``[B, C, H, W]`` averaged over H, W; others flattened."""
    f = feats[layer]
    if f.dim() == 4:
        return f.mean(dim=(2, 3))
    return f if f.dim() == 2 else f.flatten(1)
