"""Shared teacher -> student machinery (RepDistiller's train_student semantics).

``loss = gamma * CE + alpha * KD + beta * method term`` plus any attached terms (TopKD's topology term),
each returned separately, already weighted. A term whose weight is 0 is neither computed nor returned.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import Distiller, Losses
from .losses import DistillKL
from .options import LOSS_WEIGHTS, Option, resolve


@torch.no_grad()
def probe_feature_shapes(model: nn.Module, in_channels: int = 3, image_size: int = 32) -> List[Tuple[int, ...]]:
    """Shapes of ``model(x, is_feat=True)[0]`` for a 2-image batch ``[2, in_channels, S, S]`` (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        x = torch.zeros(2, in_channels, image_size, image_size,
                        device=p.device if p is not None else "cpu", dtype=p.dtype if p is not None else None)
        feats, _ = model(x, is_feat=True)
    finally:
        model.train(was_training)
    return [tuple(f.shape) for f in feats]


class TeacherStudent(Distiller):
    """Base of every method with a teacher.

    Subclasses set ``term`` (loss-dict key of the method's own term), declare their own ``options``
    (`distiller.options`; ``gamma``/``alpha``/``beta``/``kd_T`` are declared here), override option
    defaults in ``defaults`` (loss weights when the caller passes None), and implement :meth:`method_loss`.
    `from_config` builds the method from the parsed options (constructor keywords = option names, plus
    what `prepare` derives from the data); `run_tag` names the run. ``feat_shapes_s`` / ``feat_shapes_t``
    (probed at construction with ``in_channels`` x ``image_size`` inputs) let them size their modules.
    Epoch-dependent methods read ``self.epoch`` (counted from 1): the last ``set_epoch(e)`` or ``epoch=``
    batch keyword, else derived from the steps taken when ``steps_per_epoch`` is given, else None.
    """

    term: Optional[str] = None
    options: Tuple[Option, ...] = LOSS_WEIGHTS
    defaults: Dict[str, Any] = dict(gamma=1.0, alpha=0.0, beta=0.0)
    defaults_source: str = "RepDistiller"

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module] = None, gamma: Optional[float] = None,
                 alpha: Optional[float] = None, beta: Optional[float] = None, kd_T: float = 4.0,
                 in_channels: int = 3, image_size: int = 32, steps_per_epoch: Optional[int] = None):
        if teacher is None:
            raise ValueError(f"method {type(self).__name__} needs a teacher: pass --path_t")
        super().__init__(student, teacher)
        given = dict(gamma=gamma, alpha=alpha, beta=beta)
        for key, value in given.items():
            setattr(self, key, float(self.defaults[key] if value is None else value))
        self.kd = DistillKL(kd_T)
        self._epoch: Optional[int] = None
        self.steps_per_epoch = steps_per_epoch
        # training steps taken; saved with the distiller state, so a resumed run knows its epoch
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long), persistent=True)
        self.feat_shapes_s = probe_feature_shapes(student, in_channels, image_size)
        self.feat_shapes_t = probe_feature_shapes(teacher, in_channels, image_size)
        self.extra_terms = nn.ModuleDict()  # name -> module(feats_s, feats_t) returning a weighted scalar

    # -- building from the command line ---------------------------------------------------------
    @classmethod
    def prepare(cls, cfg: argparse.Namespace, data) -> Tuple[Any, Dict[str, Any]]:
        """-> ``(data, keywords)``: the data the method trains on (possibly wrapped) and the constructor
        keywords it needs beyond its options. ``data``: a `datasets.DataBundle`; ``cfg``: resolved options."""
        n, b = len(data.train), int(cfg.batch_size)
        steps = n // b + (n % b > 1)  # the trainer's batches per epoch (a last batch of 1 is dropped)
        return data, dict(in_channels=data.in_channels, image_size=int(data.image_size),
                          steps_per_epoch=max(steps, 1))

    @classmethod
    def from_config(cls, cfg: argparse.Namespace, student: nn.Module, teacher: nn.Module, data):
        """-> ``(distiller, data)`` from the resolved options in ``cfg`` (see `distiller.options.resolve`)."""
        data, keywords = cls.prepare(cfg, data)
        return cls(student, teacher, **resolve(cls, cfg), **keywords), data

    @classmethod
    def run_tag(cls, cfg: argparse.Namespace) -> Tuple[str, str]:
        """-> ``(label, parameters)`` of the run-folder name, e.g. ``("crd", "r-1.0_a-0.0_b-0.8")``; a weight the
        method does not use (`unused_options`: ``-b`` of KD) is left out (``("kd", "r-0.1_a-0.9")``)."""
        unused = cls.unused_options(cfg)
        parts = [f"{short}-{float(getattr(cfg, name))}" for name, short in (("gamma", "r"), ("alpha", "a"), ("beta", "b"))
                 if name not in unused]
        return cfg.distill, "_".join(parts)

    @classmethod
    def unused_options(cls, cfg: argparse.Namespace) -> Tuple[str, ...]:
        """Loss weights that no term of this method uses: ``beta`` when the method has no term of its own (KD).
        They are left out of the run name and identity (`train_student.py` warns when one is set)."""
        return ("beta",) if cls.term is None else ()

    # -- hooks -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    @property
    def epoch(self) -> Optional[int]:
        if self._epoch is not None:
            return self._epoch
        if self.steps_per_epoch:
            return int(self.steps_done) // int(self.steps_per_epoch) + 1
        return None

    def add_term(self, name: str, module: nn.Module) -> None:
        """Attach a further weighted term ``module(feats_s, feats_t) -> scalar`` (e.g. TopKD's ``loss_tda``)."""
        if name in self.extra_terms or name in ("loss_ce", "loss_kd", self.term):
            raise ValueError(f"loss term {name!r} is already defined")
        self.extra_terms[name] = module

    def loss_summary(self) -> str:
        """e.g. ``1.0*CE + 2.0*KD(T=4.0) + 5.0*tda``: the terms that are computed, with their weights."""
        parts = [f"{self.gamma}*CE"]
        if self.alpha:
            parts.append(f"{self.alpha}*KD(T={self.kd.T})")
        if self.beta and self.term is not None:
            parts.append(f"{self.beta}*{self.term[len('loss_'):]}")
        for name, module in self.extra_terms.items():
            weight = getattr(module, "delta", None)
            parts.append(f"{weight}*{name[len('loss_'):]}" if weight is not None else name[len("loss_"):])
        return " + ".join(parts)

    def method_modules(self) -> Iterable[nn.Module]:
        """Trainable modules of the method itself (regressors, embeddings)."""
        return ()

    def extra_modules(self) -> Iterable[nn.Module]:
        """Method modules plus each attached term's ``learnable_modules()`` (the term itself if it has none)."""
        mods = list(self.method_modules())
        for term in self.extra_terms.values():
            mods.extend(term.learnable_modules() if hasattr(term, "learnable_modules") else (term,))
        return mods

    def learnable_parameters(self) -> List[nn.Parameter]:
        """Student and extra-module parameters that require gradients (frozen helpers never included)."""
        return [p for p in super().learnable_parameters() if p.requires_grad]

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch) -> torch.Tensor:
        raise NotImplementedError

    # -- training step -----------------------------------------------------------------------------
    def forward_train(self, image, target, **batch) -> Tuple[torch.Tensor, Losses]:
        if batch.get("epoch") is not None:
            self.set_epoch(batch["epoch"])
        with torch.no_grad():
            feats_t, logit_t = self.teacher(image, is_feat=True)
        feats_s, logit_s = self.student(image, is_feat=True)
        losses: Losses = {"loss_ce": self.gamma * F.cross_entropy(logit_s, target)}
        if self.alpha:
            losses["loss_kd"] = self.alpha * self.kd(logit_s, logit_t)
        if self.beta and self.term is not None:
            losses[self.term] = self.beta * self.method_loss(feats_s, logit_s, feats_t, logit_t, target, **batch)
        for name, module in self.extra_terms.items():
            losses[name] = module(feats_s, feats_t)
        self.steps_done += 1
        return logit_s, losses
