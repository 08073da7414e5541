"""Feature-based methods of RepDistiller: FitNet hints, AT, SP, RKD, PKT (weights = their defaults)."""
from __future__ import annotations

from .losses import AttentionLoss, HintLoss, PKTLoss, Regressor, RKDLoss, SimilarityLoss
from .options import Option
from .registry import register
from models.common import check_layer

from .teacher_student import TeacherStudent


# One option object for every method that reads a hint layer (FitNet here, TopKD's hint_L2/hint_KD).
HINT_LAYER = Option("hint_layer", 2, "feature index of the hint (both networks)",
                    source="RepDistiller; the official TopKD parser has no default")


@register("fitnet", "hint")
class FitNet(TeacherStudent):
    """``beta * MSE(regressor(f_s[hint_layer]), f_t[hint_layer])``; beta 100, hint_layer 2.
    (RepDistiller's optional regressor pre-training stage is not done: the regressor trains jointly.)"""

    term = "loss_hint"
    options = (HINT_LAYER,)
    defaults = dict(gamma=1.0, alpha=0.0, beta=100.0)

    def __init__(self, student, teacher=None, hint_layer: int = 2, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.hint_layer_s = check_layer(hint_layer, len(self.feat_shapes_s), "--hint_layer", "student")
        self.hint_layer_t = check_layer(hint_layer, len(self.feat_shapes_t), "--hint_layer", "teacher")
        self.regressor = Regressor(self.feat_shapes_s[self.hint_layer_s], self.feat_shapes_t[self.hint_layer_t])
        self.hint = HintLoss()

    def method_modules(self):
        return (self.regressor,)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.hint(self.regressor(feats_s[self.hint_layer_s]), feats_t[self.hint_layer_t])


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
            raise ValueError(f"attention transfer pairs stage maps one to one, but the student has {len(maps_s)} "
                             f"and the teacher {len(maps_t)}: pick another method or networks with equal stages")
        self.at = AttentionLoss(p=2)

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        return self.at(feats_s[1:-1], feats_t[1:-1])


class _LastFeatures(TeacherStudent):
    """A method applying ``self.loss`` to ``feats[self.layer]`` of both networks."""

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
