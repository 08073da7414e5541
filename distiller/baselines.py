"""The baselines TopKD is compared with: KD and DKD on the logits; RepDistiller's FitNet hints, AT, SP, RKD and PKT
on the features (weights: their defaults); the official TopKD code's hints without a regressor (``hint_L2`` /
``hint_KD``). CRD (with its sampler) and TGD have modules of their own."""

import torch.nn.functional as F

from models.common import check_layer
from topkd_io import TopKDError

from .losses import AttentionLoss, DKDLoss, HintLoss, PKTLoss, Regressor, RKDLoss, SimilarityLoss, kd_loss
from .options import Option
from .registry import register
from .teacher_student import TeacherStudent, fresh_twin


@register("kd")
class KD(TeacherStudent):
    """``gamma * CE + alpha * KL(p_t || p_s) T^2``. RepDistiller's KD table passes ``-r 0.1 -a 0.9``, TopKD's
    resnet56 -> resnet20 setting ``-r 1 -a 2``."""

    defaults = dict(gamma=1.0, alpha=0.9, beta=0.0)
    defaults_source = "gamma: -r default of the official TopKD/RepDistiller parsers; alpha: RepDistiller's kd command"


@register("dkd")
class DKD(TeacherStudent):
    """``gamma * CE + beta * warmup * (dkd_alpha * TCKD + dkd_beta * NCKD)`` at temperature ``kd_T``, warm-up
    ``min(epoch / dkd_warmup, 1)`` (1 before the first epoch)."""

    term = "loss_dkd"
    options = (
        Option("dkd_alpha", 1.0, "DKD target-class weight", source="DKD paper, CIFAR", low=0.0),
        Option("dkd_beta", 8.0, "DKD non-target-class weight", source="DKD paper, CIFAR", low=0.0),
        Option("dkd_warmup", 20, "DKD linear warm-up epochs", source="DKD paper", low=0),
    )
    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)
    defaults_source = "DKD paper (CIFAR)"

    def __init__(self, student, teacher=None, kd_T: float = 4.0, dkd_alpha: float = 1.0, dkd_beta: float = 8.0,
                 dkd_warmup: int = 20, **kwargs):
        super().__init__(student, teacher, kd_T=kd_T, **kwargs)
        self.dkd = DKDLoss(dkd_alpha, dkd_beta, kd_T, dkd_warmup)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.dkd(logit_s, logit_t, target, epoch=self.epoch)


class _Hint(TeacherStudent):
    term = "loss_hint"
    options = (Option("hint_layer", 2, "feature index of the hint (both networks)",
                      source="RepDistiller; the official TopKD parser has no default"),)

    def __init__(self, student, teacher=None, hint_layer: int = 2, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.hint_layer_s = check_layer(hint_layer, len(self.feat_shapes_s), "--hint_layer", "student")
        self.hint_layer_t = check_layer(hint_layer, len(self.feat_shapes_t), "--hint_layer", "teacher")


@register("fitnet", "hint")
class FitNet(_Hint):
    """``beta * MSE(regressor(f_s[hint_layer]), f_t[hint_layer])``; beta 100, hint_layer 2. The regressor trains
    jointly (RepDistiller's optional regressor pre-training stage is not done)."""

    defaults = dict(gamma=1.0, alpha=0.0, beta=100.0)

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.regressor = Regressor(self.feat_shapes_s[self.hint_layer_s], self.feat_shapes_t[self.hint_layer_t])
        self.hint = HintLoss()

    def method_modules(self):
        return (self.regressor,)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.hint(self.regressor(feats_s[self.hint_layer_s]), feats_t[self.hint_layer_t])


class _PlainHint(_Hint):
    """A hint term between ``feats[hint_layer]`` of equal shape in both networks (no regressor)."""

    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)
    defaults_source = "official TopKD parser (-r 1; -a/-b passed by its scripts)"

    @classmethod
    def example(cls, student, teacher, batch):
        """The teacher: a freshly initialised twin of the student, so that the maps have equal shapes."""
        return cls(student, fresh_twin(student)), batch

    def __init__(self, student, teacher=None, hint_layer: int = 2, **kwargs):
        super().__init__(student, teacher, hint_layer=hint_layer, **kwargs)
        shape_s, shape_t = self.feat_shapes_s[self.hint_layer_s][1:], self.feat_shapes_t[self.hint_layer_t][1:]
        if shape_s != shape_t:
            raise TopKDError(f"--distill {self.registered} compares feats[{hint_layer}] directly, but the student's is "
                             f"{list(shape_s)} and the teacher's {list(shape_t)}; pick another --hint_layer or "
                             f"--distill fitnet (which adds a regressor)")


@register("hint_l2")
class HintL2(_PlainHint):
    """``beta * MSE(f_s[hint_layer], f_t[hint_layer])``, mean over every element (official ``hint_L2``)."""

    registered = "hint_L2"

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return F.mse_loss(feats_s[self.hint_layer_s], feats_t[self.hint_layer_t])


@register("hint_kd")
class HintKD(_PlainHint):
    """``beta * KD(f_s[hint_layer], f_t[hint_layer])`` at ``kd_T`` (official ``hint_KD``: its ``DistillKL`` on
    the maps: softmax over the channels, KL summed over everything, times ``T^2`` / batch)."""

    registered = "hint_KD"

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return kd_loss(feats_s[self.hint_layer_s], feats_t[self.hint_layer_t], self.kd.T)


@register("at", "attention")
class AT(TeacherStudent):
    """``beta * sum_stages AT(f_s, f_t)`` over the stage maps ``feats[1:-1]``; beta 1000, p 2."""

    term = "loss_at"
    defaults = dict(gamma=1.0, alpha=0.0, beta=1000.0)

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        maps_s = [s for s in self.feat_shapes_s[1:-1] if len(s) == 4]
        maps_t = [s for s in self.feat_shapes_t[1:-1] if len(s) == 4]
        if len(maps_s) != len(maps_t) or not maps_s:
            raise TopKDError(f"attention transfer pairs stage maps one to one, but the student has {len(maps_s)} "
                             f"and the teacher {len(maps_t)}: pick another method or networks with equal stages")
        self.at = AttentionLoss(p=2)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.at(feats_s[1:-1], feats_t[1:-1])


class _LastFeatures(TeacherStudent):
    layer = -1

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.loss(feats_s[self.layer], feats_t[self.layer])


@register("sp", "similarity")
class SP(_LastFeatures):
    """``beta * SP(f_s[-2], f_t[-2])`` (last stage map); beta 3000."""

    term = "loss_sp"
    layer = -2
    defaults = dict(gamma=1.0, alpha=0.0, beta=3000.0)

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.loss = SimilarityLoss()


@register("rkd")
class RKD(_LastFeatures):
    """``beta * (25 * RKD-D + 50 * RKD-A)`` on the embeddings; beta 1."""

    term = "loss_rkd"
    options = (
        Option("rkd_w_dist", 25.0, "RKD distance-term weight", source="RKD paper; RepDistiller", low=0.0),
        Option("rkd_w_angle", 50.0, "RKD angle-term weight", source="RKD paper; RepDistiller", low=0.0),
    )
    defaults = dict(gamma=1.0, alpha=0.0, beta=1.0)

    def __init__(self, student, teacher=None, rkd_w_dist: float = 25.0, rkd_w_angle: float = 50.0, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.loss = RKDLoss(rkd_w_dist, rkd_w_angle)


@register("pkt")
class PKT(_LastFeatures):
    """``beta * PKT(f_s[-1], f_t[-1])``; beta 30000."""

    term = "loss_pkt"
    defaults = dict(gamma=1.0, alpha=0.0, beta=30000.0)

    def __init__(self, student, teacher=None, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.loss = PKTLoss()
