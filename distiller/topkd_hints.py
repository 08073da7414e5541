"""The two feature-hint methods of the official TopKD code (``--distill hint_L2`` / ``hint_KD``).

Both read entry ``hint_layer`` of the two networks' feature lists with no regressor between them (unlike
FitNet, `distiller.feature_methods.FitNet`), and the official loss is ``gamma * CE + alpha * KD +
beta * term`` like every `TeacherStudent`:

- ``hint_l2``: ``MSE(f_s, f_t)``, mean over every element; the two maps must have the same shape.
- ``hint_kd``: Hinton's KD term applied to the maps themselves: softmax over the channel axis (dim 1) at
  temperature ``kd_T``, ``KL(p_t || p_s)`` summed over everything, times ``T^2`` / batch (the official code
  hands the maps to its ``DistillKL``).
"""
from __future__ import annotations

import copy

import torch.nn.functional as F

from models.common import check_layer

from .feature_methods import HINT_LAYER
from .losses import kd_loss
from .registry import register
from .teacher_student import TeacherStudent


class _PlainHint(TeacherStudent):
    """A hint term between ``feats[hint_layer]`` of equal shape in both networks."""

    options = (HINT_LAYER,)
    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)
    defaults_source = "official TopKD parser (-r 1; -a/-b passed by its scripts)"

    @classmethod
    def example(cls, student, teacher, batch):
        """The teacher: another network of the student's architecture (fresh weights), as the maps are compared
        with no regressor between them."""
        twin = copy.deepcopy(student)
        for module in twin.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        return cls(student, twin), batch

    def __init__(self, student, teacher=None, hint_layer: int = 2, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.hint_layer_s = check_layer(hint_layer, len(self.feat_shapes_s), "--hint_layer", "student")
        self.hint_layer_t = check_layer(hint_layer, len(self.feat_shapes_t), "--hint_layer", "teacher")
        shape_s, shape_t = self.feat_shapes_s[self.hint_layer_s][1:], self.feat_shapes_t[self.hint_layer_t][1:]
        if shape_s != shape_t:
            raise ValueError(f"--distill {self.registered} compares feats[{hint_layer}] directly, but the student's is "
                             f"{list(shape_s)} and the teacher's {list(shape_t)}; pick another --hint_layer or "
                             f"--distill fitnet (which adds a regressor)")


@register("hint_l2")
class HintL2(_PlainHint):
    """``beta * MSE(f_s[hint_layer], f_t[hint_layer])`` (official TopKD ``--distill hint_L2``)."""

    registered = "hint_L2"
    term = "loss_hint"

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return F.mse_loss(feats_s[self.hint_layer_s], feats_t[self.hint_layer_t])


@register("hint_kd")
class HintKD(_PlainHint):
    """``beta * KD(f_s[hint_layer], f_t[hint_layer])`` at ``kd_T``, softmax over channels (official ``hint_KD``)."""

    registered = "hint_KD"
    term = "loss_hint"

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return kd_loss(feats_s[self.hint_layer_s], feats_t[self.hint_layer_t], self.kd.T)
