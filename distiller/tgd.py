"""TGD: topological guidance from a second teacher trained on persistence images of the input images
(Jeon et al., "Leveraging Topological Guidance for Improved Knowledge Distillation", GRaM 2024).

Two frozen teachers: `teacher` sees the image, `teacher2` sees the image's persistence image (the batch
keyword `pi`, `[B, 2C, R, R]`, see `datasets.pi_images`). With a = `alpha`, T = `temperature`:

    loss_ce     = ce_weight * CE(s, y)
    loss_kd_img = kd_weight * T^2 * a       * KL(p_t1 || p_s)
    loss_kd_pi  = kd_weight * T^2 * (1 - a) * KL(p_t2 || p_s)
    loss_sim    = sim_weight * sum over `stages` of mean((G_s - n(a G_t1 + (1 - a) G_t2))^2)

p = softmax(logits / T); G = n(F F^T), the `[B, B]` Gram matrix of a stage's flattened features with
L2-normalized rows (n); the teachers' mixture is normalized again. Defaults are the paper's:
0.1 / 0.9 / 1000, T = 4, a = 0.99.

KL scale: `kl_reduction="mean"` (default) divides the summed KL by batch x classes, the element-wise mean
the official code uses (a K-times smaller KD term than the textbook scale); `"batchmean"` divides by
the batch only (the usual KD scale; then reduce `kd_weight` or expect a different balance).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Distiller
from .registry import register

KL_REDUCTIONS = ("mean", "batchmean")


def kl_teacher_student(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                       reduction: str = "mean") -> torch.Tensor:
    """KL(softmax(t/T) || softmax(s/T)) summed over classes and the batch, divided by B*K ("mean") or
    B ("batchmean"). Logits `[B, K]`; no T^2 factor."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {', '.join(KL_REDUCTIONS)}, got {reduction!r}")
    # at least float32 (half/bfloat16 logits under autocast are upcast; float64 stays)
    student_logits, teacher_logits = (x.to(torch.promote_types(x.dtype, torch.float32))
                                      for x in (student_logits, teacher_logits))
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    log_pt = F.log_softmax(teacher_logits / temperature, dim=1)
    total = (log_pt.exp() * (log_pt - log_ps)).sum()
    denom = student_logits.numel() if reduction == "mean" else student_logits.shape[0]
    return total / denom


def normalized_gram(features: torch.Tensor) -> torch.Tensor:
    """`[B, ...]` stage features -> `[B, B]` Gram matrix F F^T (F flattened per item), rows L2-normalized."""
    flat = features.reshape(features.shape[0], -1)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    with torch.autocast(flat.device.type, enabled=False):  # float32 under AMP (the term is weighted 1000)
        return F.normalize(flat @ flat.t(), p=2, dim=1)


@register("tgd")
class TGD(Distiller):
    """Student distilled from an image teacher and a persistence-image teacher (module docstring).

    student, teacher: models with `forward(x, is_feat=True)` -> `(feats, logits)`; teacher2: the same
    for PI inputs (e.g. WRN-16-3 with `in_channels=6`). stages: positions in `feats` of the three
    block-group outputs (`feats[1:4]` for the WRNs).
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher2: Optional[nn.Module] = None,
                 temperature: float = 4.0, alpha: float = 0.99, ce_weight: float = 0.1,
                 kd_weight: float = 0.9, sim_weight: float = 1000.0, stages: Sequence[int] = (1, 2, 3),
                 kl_reduction: str = "mean", **_):
        if teacher is None or teacher2 is None:
            raise ValueError("tgd needs two teachers: the image teacher (--path_t) and the "
                             "persistence-image teacher (--path_t2)")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"tgd alpha (weight of the image teacher) must be in [0, 1], got {alpha}")
        if not float(temperature) > 0:
            raise ValueError(f"tgd temperature must be > 0, got {temperature}")
        if kl_reduction not in KL_REDUCTIONS:
            raise ValueError(f"kl_reduction must be one of {', '.join(KL_REDUCTIONS)}, got {kl_reduction!r}")
        stages = tuple(int(s) for s in stages)
        if not stages:
            raise ValueError("tgd needs at least one feature stage for the similarity loss")
        super().__init__(student, teacher)
        self.teacher2 = teacher2
        for p in teacher2.parameters():
            p.requires_grad_(False)
        teacher2.eval()
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.ce_weight = float(ce_weight)
        self.kd_weight = float(kd_weight)
        self.sim_weight = float(sim_weight)
        self.stages = stages
        self.kl_reduction = kl_reduction

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher2.eval()
        return self

    def _stage_feats(self, feats, who: str):
        if len(feats) <= max(self.stages):
            raise ValueError(f"tgd stages {self.stages} need {max(self.stages) + 1} feature maps but the "
                             f"{who} returns {len(feats)}; set stages to match the architecture")
        return [feats[s] for s in self.stages]

    def forward_train(self, image, target, pi: Optional[torch.Tensor] = None, **batch):
        if pi is None:
            raise ValueError("tgd needs each batch's persistence images (`pi`); wrap the data set with "
                             "datasets.pi_images.attach_image_pis")
        feats_s, logits_s = self.student(image, is_feat=True)
        with torch.no_grad():
            feats_t1, logits_t1 = self.teacher(image, is_feat=True)
            feats_t2, logits_t2 = self.teacher2(pi, is_feat=True)
        a, t = self.alpha, self.temperature
        kd_scale = self.kd_weight * t * t
        sim = logits_s.new_zeros(())
        for fs, f1, f2 in zip(self._stage_feats(feats_s, "student"), self._stage_feats(feats_t1, "teacher"),
                              self._stage_feats(feats_t2, "teacher2")):
            with torch.no_grad():
                target_gram = F.normalize(a * normalized_gram(f1) + (1 - a) * normalized_gram(f2), p=2, dim=1)
            sim = sim + F.mse_loss(normalized_gram(fs), target_gram)
        losses = {
            "loss_ce": self.ce_weight * F.cross_entropy(logits_s, target),
            "loss_kd_img": kd_scale * a * kl_teacher_student(logits_s, logits_t1, t, self.kl_reduction),
            "loss_kd_pi": kd_scale * (1 - a) * kl_teacher_student(logits_s, logits_t2, t, self.kl_reduction),
            "loss_sim": self.sim_weight * sim,
        }
        return logits_s, losses
