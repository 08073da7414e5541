"""FT: factor transfer (Kim et al., "Paraphrasing complex network", NeurIPS 2018).

Follows HobbitLong/RepDistiller: distiller_zoo/FT.py (the loss, lines 7-31), models/util.py ``Paraphraser`` and
``Translator`` (lines 7-62, factor rate ``k`` 0.5), helper/pretrain.py (the stage, lines 11-94: the paraphraser
alone learns to reconstruct the teacher's ``feats[-2]`` under MSE, at lr 0.01 for its ResNet/WRN students) and
train_student.py (lines 239-253: then the translator trains with the student, the paraphraser stays fixed).
Table weights: scripts/run_cifar_distill.sh ``--distill factor -a 0 -b 200``."""
import torch
import torch.nn.functional as F
from torch import nn

from ..options import Option
from ..registry import register
from .pretrain import Pretrained

RATE = 0.5  # the factor rate k: factors have k x the teacher's channels (RepDistiller's default)


def _stack(widths, bn: bool, conv=nn.Conv2d) -> nn.Sequential:
    """3x3 same-size convolutions between the ``widths``, each followed by BatchNorm (or nothing) and
    LeakyReLU(0.1), at RepDistiller's module indices."""
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [conv(a, b, 3, 1, 1), nn.BatchNorm2d(b) if bn else nn.Identity(), nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


class Paraphraser(nn.Module):
    """An autoencoder of the teacher's map ``[B, C, H, W]``: ``encoder`` -> the factor ``[B, int(C k), H, W]``,
    ``decoder`` -> back to ``[B, C, H, W]``; no BatchNorm."""

    def __init__(self, channels: int, rate: float = RATE):
        super().__init__()
        factor = int(channels * rate)
        self.encoder = _stack([channels, channels, factor, factor], bn=False)
        self.decoder = _stack([factor, factor, channels, channels], bn=False, conv=nn.ConvTranspose2d)


def factor_loss(factor_s: torch.Tensor, factor_t: torch.Tensor) -> torch.Tensor:
    """Mean ``|phi(F_s) - phi(F_t)|`` with ``phi(F) = normalize(mean_c F^2)`` ``[B, H*W]`` (unit L2 norm per
    sample), the larger map average-pooled to the smaller's size first."""
    size = min(factor_s.shape[2], factor_t.shape[2])
    phi_s, phi_t = (F.normalize(F.adaptive_avg_pool2d(f, size).pow(2).mean(1).flatten(1)) for f in (factor_s, factor_t))
    return (phi_s - phi_t).abs().mean()


@register("ft", "factor")
class FT(Pretrained):
    """Pre-training: ``MSE(decoder(encoder(f_t[-2])), f_t[-2])`` over the paraphraser at ``--ft_init_lr``; then
    ``beta * factor_loss(translator(f_s[-2]), encoder(f_t[-2]))`` with the translator (BatchNorm) trained.
    RepDistiller pre-trains at its main learning rate for students outside its ResNet/WRN list (VGG: 0.05):
    pass ``--ft_init_lr`` for those."""

    term = "loss_ft"
    trains_student = False
    options = (Option("ft_init_lr", 0.01, "learning rate of FT's paraphraser pre-training",
                      source="RepDistiller helper/pretrain.py (its ResNet/WRN students)", low=0.0, low_open=True),)
    defaults = dict(gamma=1.0, alpha=0.0, beta=200.0)
    defaults_source = "RepDistiller scripts/run_cifar_distill.sh (factor: -a 0 -b 200)"

    def __init__(self, student, teacher=None, ft_init_lr: float = 0.01, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.init_lr = float(ft_init_lr)
        chans_s, chans_t = self.feat_shapes_s[-2][1], self.feat_shapes_t[-2][1]
        self.paraphraser = Paraphraser(chans_t)
        self.translator = _stack([chans_s, chans_s, int(chans_t * RATE), int(chans_t * RATE)], bn=True)

    def method_modules(self):
        return (self.translator,)

    def pretrain_parameters(self):
        return list(self.paraphraser.parameters())

    def pretrain_lr(self, lr):
        return self.init_lr

    def pretrain_loss(self, feats_s, feats_t):
        return F.mse_loss(self.paraphraser.decoder(self.paraphraser.encoder(feats_t[-2])), feats_t[-2])

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch):
        with torch.no_grad():
            factor_t = self.paraphraser.encoder(feats_t[-2])
        return factor_loss(self.translator(feats_s[-2]), factor_t)

    @classmethod
    def run_tag(cls, cfg):
        label, params = super().run_tag(cfg)
        return label, f"{params}_ilr-{float(cfg.ft_init_lr)}"
