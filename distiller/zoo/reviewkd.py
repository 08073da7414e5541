"""ReviewKD, "Distilling Knowledge via Knowledge Review" (Chen et al., CVPR 2021).

Follows mdistiller's ``mdistiller/distillers/ReviewKD.py`` (``ABF``, ``hcl_loss``, ``forward_train``), the port
of dvlab-research/ReviewKD ``CIFAR-100/model/reviewkd.py``. Table weight: beta 5 (mdistiller
``configs/cifar100/reviewkd.yaml`` ``REVIEWKD_WEIGHT``, and ``--kd-loss-weight 5.0`` of the original's
``CIFAR-100/script/reviewKD.sh`` for most pairs), CE weight 1, warm-up 20 epochs (``REVIEWKD.WARMUP_EPOCHS``).

The student's ``feats[1:]`` (its post-ReLU stage maps and the embedding as a 1x1 map, as mdistiller's default
``STU_PREACT = False``) are fused from the deepest up by attention-based fusion modules (`ABF`); each output
is compared with the teacher's ``feats[1:]`` before their last ReLU by the hierarchical context loss
(`hcl_loss`). The fusion shapes and widths mdistiller lists per pair (``SHAPES``, ``OUT_SHAPES``,
``IN_CHANNELS``, ``OUT_CHANNELS``) are read from the two networks' feature shapes; the middle width is
``min(512, width of the student's embedding)``."""
import torch
import torch.nn.functional as F
from torch import nn

from topkd_io import TopKDError

from ..options import Option
from ..registry import register
from ..teacher_student import TeacherStudent


class ABF(nn.Module):
    """Attention-based fusion. ``x`` ``[B, C_in, h, w]`` -> 1x1 conv-BN to ``mid`` channels; with ``fuse``, mixed
    with the deeper level's ``residual`` (nearest-resized to ``h, w``) by two sigmoid attention maps; resized
    (nearest) to ``out_size``; -> ``(3x3 conv-BN to C_out of it [B, C_out, *out_size], the mixed map)``."""

    def __init__(self, c_in: int, mid: int, c_out: int, fuse: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.conv2 = nn.Sequential(nn.Conv2d(mid, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.att_conv = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x, residual=None, out_size=None):
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, x.shape[-2:], mode="nearest")
            att = self.att_conv(torch.cat([x, residual], 1))
            x = x * att[:, :1] + residual * att[:, 1:]
        if tuple(x.shape[-2:]) != tuple(out_size):
            x = F.interpolate(x, out_size, mode="nearest")
        return self.conv2(x), x


def hcl_loss(outs, targets) -> torch.Tensor:
    """Sum over levels of ``(MSE + sum_k 2^-k MSE of both average-pooled to 4, 2, 1 (those smaller than the
    map's height)) / (1 + sum_k 2^-k)``; each map ``[B, C, H, W]``."""
    total = 0.0
    for s, t in zip(outs, targets):
        loss, weight, norm = F.mse_loss(s, t), 1.0, 1.0
        for size in (4, 2, 1):
            if size < s.shape[2]:
                weight /= 2
                loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(s, size), F.adaptive_avg_pool2d(t, size))
                norm += weight
        total = total + loss / norm
    return total


def as_maps(feats):
    return [f if f.dim() == 4 else f[:, :, None, None] for f in feats]


@register("reviewkd", "review")
class ReviewKD(TeacherStudent):
    """``gamma * CE + beta * min(epoch / reviewkd_warmup, 1) * HCL`` (beta 5; the factor is 1 before the first
    epoch); see the module docstring."""

    term = "loss_reviewkd"
    preact = ("teacher",)
    options = (Option("reviewkd_warmup", 20, "ReviewKD linear warm-up epochs",
                      source="mdistiller REVIEWKD.WARMUP_EPOCHS; the original's --kd-warm-up", low=0),)
    defaults = dict(gamma=1.0, alpha=0.0, beta=5.0)
    defaults_source = "mdistiller configs/cifar100/reviewkd.yaml (CE 1, REVIEWKD_WEIGHT 5)"

    def __init__(self, student, teacher=None, reviewkd_warmup: int = 20, **kwargs):
        super().__init__(student, teacher, **kwargs)
        if not hasattr(teacher, "preact_points"):
            raise TopKDError(f"--distill reviewkd needs the teacher's pre-ReLU features, which the teacher "
                             f"({type(teacher).__name__}) cannot give; pick a registered architecture")
        shapes_s, shapes_t = self.feat_shapes_s[1:], self.feat_shapes_t[1:]
        if len(shapes_s) != len(shapes_t):
            raise TopKDError(f"--distill reviewkd pairs feature levels one to one, but the student "
                             f"({type(student).__name__}) has {len(shapes_s)} and the teacher "
                             f"({type(teacher).__name__}) {len(shapes_t)}; pick networks with as many stages")
        mid = min(512, shapes_s[-1][1])
        self.abfs = nn.ModuleList(ABF(s[1], mid, t[1], fuse=i < len(shapes_s) - 1)
                                  for i, (s, t) in enumerate(zip(shapes_s, shapes_t)))  # shallow to deep
        self.warmup = int(reviewkd_warmup)

    @classmethod
    def run_tag(cls, cfg):
        label, params = super().run_tag(cfg)
        return label, f"{params}_w-{int(cfg.reviewkd_warmup)}"

    def method_modules(self):
        return (self.abfs,)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        xs, targets = as_maps(feats_s[1:]), as_maps(feats_t[1:])
        outs, residual = [None] * len(xs), None
        for i in reversed(range(len(xs))):  # the deepest level first, its mixed map feeding the next
            outs[i], residual = self.abfs[i](xs[i], residual, targets[i].shape[-2:])
        factor = 1.0 if self.epoch is None or self.warmup <= 0 else min(self.epoch / self.warmup, 1.0)
        return factor * hcl_loss(outs, targets)
