"""TGD: topological guidance from a second teacher trained on persistence images of the input images
(Jeon et al., "Leveraging Topological Guidance for Improved Knowledge Distillation", GRaM 2024).

`teacher` sees the image, the frozen `teacher2` its persistence image (batch keyword ``pi``, ``[B, 2C, R, R]``,
`datasets.pi_images`). With a = ``tgd_alpha`` and T = ``kd_T``:

    loss_ce     = gamma * CE(s, y)
    loss_kd_img = alpha * T^2 * a       * KL(p_t1 || p_s)
    loss_kd_pi  = alpha * T^2 * (1 - a) * KL(p_t2 || p_s)
    loss_sim    = beta * sum over `stages` of mean((n(G_s) - n(a G_t1 + (1 - a) G_t2))^2)

G = F F^T, the raw ``[B, B]`` Gram matrix of a stage's flattened features, n = L2 normalisation of each row: as in
the official code the raw Gram matrices are mixed, so the PI teacher's share grows with the magnitude of its Gram
matrix. The KL is divided by batch x classes (``--kd_reduction mean``, the official code's) unless ``batchmean``.
The constructor keeps the official names (``alpha`` = a, ``temperature``, ``ce_weight``, ``kd_weight``, ...)."""
import argparse
import logging
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from datasets.pi_images import attach_image_pis, pi_cache_inputs
from models import load_model, model_dict
from topkd_io import TopKDError

from .options import Option, resolve
from .registry import register
from .teacher_student import TeacherStudent

log = logging.getLogger(__name__)


def gram(features: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` stage features -> the raw ``[B, B]`` Gram matrix (float32 at least)."""
    flat = features.reshape(features.shape[0], -1)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    with torch.autocast(flat.device.type, enabled=False):  # float32 under AMP (the term is weighted 1000)
        return flat @ flat.t()


def normalized_gram(features: torch.Tensor) -> torch.Tensor:
    return F.normalize(gram(features), p=2, dim=1)


@register("tgd")
class TGD(TeacherStudent):
    """Student distilled from an image teacher and a persistence-image teacher (module docstring). teacher2: a
    network of PI inputs (e.g. WRN-16-3 with ``in_channels=6``); stages: positions in ``feats`` of the three
    block-group outputs (``feats[1:4]`` for the WRNs)."""

    term = "loss_sim"
    recipe = "tgd"  # TGD's official hyper-parameters and no augmentation (engine.config.RECIPES)
    batch_fields = ("pi",)  # the persistence image of each batch image (datasets.pi_images.attach_image_pis)
    with_topology = False  # its own loss: TopKD's topology term does not compose with it
    options = (  # beside the loss weights (gamma = CE, alpha = KD, beta = the similarity term) and kd_T
        Option("path_t2", None, "persistence-image teacher checkpoint (train_teacher.py --input pi); required",
               free=True),
        Option("model_t2", None, "its architecture when the checkpoint does not name it"),
        Option("pi_root", "./data/image_pi", "image-PI cache root written by generate_image_PI.py (caches "
               "<pi_root>/<dataset>_<split> with the default parameters)", free=True),
        Option("pi_cache", None, "an image-PI cache taken as its manifest records it: a split folder <name>_train "
               "(the test split beside it) or a root of <dataset>_train/_test; replaces --pi_root", free=True),
        Option("tgd_alpha", 0.99, "weight a of the image teacher (1-a: the PI teacher)", source="TGD paper",
               low=0.0, high=1.0),
        Option("kd_reduction", "batchmean", "KD divisor: 'batchmean' divides the summed KL by the batch, 'mean' by "
               "batch x classes", choices=("batchmean", "mean")),
    )
    defaults = dict(gamma=0.1, alpha=0.9, beta=1000.0, kd_reduction="mean")
    defaults_source = "TGD paper; KD divided by batch x classes as TGD's code"

    @classmethod
    def from_config(cls, cfg: argparse.Namespace, student: nn.Module, teacher: nn.Module, data):
        """-> ``(distiller, data, options)``: the PI teacher loaded and each image's cached PI attached (``pi``)."""
        if cfg.path_t2 is None:
            raise TopKDError("--distill tgd needs --path_t2, the image-PI teacher (train_teacher.py --input pi)")
        teacher2, model_t2, ckpt2 = load_model(cfg.path_t2, arch=cfg.model_t2, num_classes=data.num_classes)
        norm = getattr(cfg, "input_norm", None) or "tgd"
        data = attach_image_pis(data, cfg.pi_root, pi_cache=cfg.pi_cache, verify=not getattr(cfg, "no_verify", False),
                                input_norm=norm)
        record, cache = ckpt2.get("config") or {}, data.train.cache  # the PI teacher's record (none in TGD's files)
        if record.get("input_norm") not in (None, norm):
            log.warning(f"warning: the PI teacher {cfg.path_t2} was trained with --input_norm {record['input_norm']}, "
                        f"this run feeds it --input_norm {norm} inputs")
        trained, here = record.get("image_pi_params"), cache.params.to_dict()
        diffs = [k for k in here if trained is not None and here[k] != trained.get(k)]
        if diffs:
            raise TopKDError(f"the PI teacher --path_t2 {cfg.path_t2} was trained on image PIs with "
                             f"{', '.join(f'{k} {trained.get(k)}' for k in diffs)}, but this run's cache "
                             f"{cache.folder} holds {', '.join(f'{k} {here[k]}' for k in diffs)}; pass the cache it "
                             f"was trained on (--pi_cache) or a PI teacher trained on this one")
        distiller = cls(student, teacher, teacher2=teacher2, temperature=cfg.kd_T, alpha=cfg.tgd_alpha,
                        ce_weight=cfg.gamma, kd_weight=cfg.alpha, sim_weight=cfg.beta,
                        kl_reduction=cfg.kd_reduction)
        return distiller, data, dict(resolve(cls, cfg), model_t2=model_t2)

    @classmethod
    def example(cls, student, teacher, batch):
        """A resnet8 of the zoo as the PI teacher, and random persistence images ``[B, 2C, S, S]`` as ``pi``."""
        image = batch["image"]
        with torch.no_grad():
            classes = teacher.eval()(image).shape[1]
        channels = 2 * image.shape[1]  # rows and columns of each image channel
        teacher2 = model_dict["resnet8"](num_classes=classes, in_channels=channels)
        pi = torch.rand(image.shape[0], channels, *image.shape[2:])
        return cls(student, teacher, teacher2=teacher2), dict(batch, pi=pi)

    @classmethod
    def input_files(cls, cfg: argparse.Namespace, must_exist: bool = True) -> Dict[str, Optional[str]]:
        files = {"path_t2": cfg.path_t2} if cfg.path_t2 else {}
        return {**files, **pi_cache_inputs(cfg.pi_root, cfg.pi_cache, cfg.dataset, must_exist)}

    @classmethod
    def run_tag(cls, cfg: argparse.Namespace) -> Tuple[str, str]:
        return cfg.distill, f"r-{float(cfg.gamma)}_a-{float(cfg.alpha)}_b-{float(cfg.beta)}_ta-{float(cfg.tgd_alpha)}"

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher2: nn.Module, temperature: float = 4.0,
                 alpha: float = 0.99, ce_weight: float = 0.1, kd_weight: float = 0.9, sim_weight: float = 1000.0,
                 stages: Sequence[int] = (1, 2, 3), kl_reduction: str = "mean"):
        # the image teacher takes the student's C input channels, the PI teacher the PIs' 2C (no convolution: no check)
        firsts = [next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
                  for net in (student, teacher, teacher2)]
        c_s, c_t, c_t2 = (0, 0, 0) if None in firsts else (int(m.in_channels) for m in firsts)
        if c_t != c_s:
            raise TopKDError(f"the image teacher (--path_t) takes {c_t}-channel inputs but the images have {c_s}; "
                             f"pass the teacher trained on images (a PI teacher given as --path_t?)")
        if c_t2 != 2 * c_s:
            raise TopKDError(f"the PI teacher (--path_t2) takes {c_t2}-channel inputs but the persistence images "
                             f"have {2 * c_s} (rows and columns of {c_s} channels); pass a teacher trained with "
                             f"train_teacher.py --input pi (an image teacher given as --path_t2?)")
        super().__init__(student, teacher, gamma=ce_weight, alpha=kd_weight, beta=sim_weight, kd_T=temperature,
                         kd_reduction=kl_reduction)
        self.freeze("teacher2", teacher2)
        self.tgd_alpha = float(alpha)
        self.stages = tuple(int(s) for s in stages)

    def loss_summary(self) -> str:
        a, t = self.tgd_alpha, self.kd.T
        return (f"{self.gamma}*CE + {self.alpha}*T^2*({a}*KL_img + {1 - a:.6g}*KL_pi)(T={t}, KL {self.kd.reduction}) "
                f"+ {self.beta}*sim(n({a}*G_img + {1 - a:.6g}*G_pi))")

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, feats_t2=None, **batch) -> torch.Tensor:
        if min(len(feats_s), len(feats_t), len(feats_t2)) <= max(self.stages):
            raise TopKDError(f"tgd stages {self.stages} need {max(self.stages) + 1} feature maps but the networks "
                             f"return {len(feats_s)}, {len(feats_t)} and {len(feats_t2)}; set stages to match them")
        sim, a = logit_s.new_zeros(()), self.tgd_alpha
        for s in self.stages:
            with torch.no_grad():  # the target n(a G_t1 + (1 - a) G_t2): the raw Gram matrices mixed first
                target_gram = F.normalize(a * gram(feats_t[s]) + (1 - a) * gram(feats_t2[s]), p=2, dim=1)
            sim = sim + F.mse_loss(normalized_gram(feats_s[s]), target_gram)
        return sim

    def forward_train(self, image, target, pi: torch.Tensor, **batch):
        with torch.no_grad():
            feats_t, logit_t = self.teacher(image, is_feat=True)
            feats_t2, logit_t2 = self.teacher2(pi, is_feat=True)
        feats_s, logit_s = self.student(image, is_feat=True)
        a = self.tgd_alpha
        losses = {"loss_ce": self.gamma * F.cross_entropy(logit_s, target)} if self.gamma else {}
        if self.alpha and a:
            losses["loss_kd_img"] = self.alpha * a * self.kd(logit_s, logit_t)
        if self.alpha and 1 - a:
            losses["loss_kd_pi"] = self.alpha * (1 - a) * self.kd(logit_s, logit_t2)
        if self.beta:
            losses[self.term] = self.beta * self.method_loss(feats_s, logit_s, feats_t, logit_t, target,
                                                             feats_t2=feats_t2, **batch)
        return logit_s, losses
