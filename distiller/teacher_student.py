"""Shared teacher -> student machinery (RepDistiller's train_student semantics).

``loss = gamma * CE + alpha * KD + beta * method term + delta * TDA`` (TopKD's topology term, held as
``topology`` when attached), each returned separately, already weighted. A term whose weight is 0 is
neither computed nor returned.
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
    defaults in ``defaults`` (loss weights when the caller passes None), and implement :meth:`method_loss`,
    the one function a method writes. `from_config` builds the method from the parsed options (constructor
    keywords = option names, plus what `prepare` derives from the data); `run_tag` names the run and must
    carry the method's own options. ``feat_shapes_s`` / ``feat_shapes_t`` (probed on first use with
    ``in_channels`` x ``image_size`` inputs) let them size their modules. Epoch-dependent methods read
    ``self.epoch`` (counted from 1): the last ``set_epoch(e)`` (the trainer calls it before every epoch),
    None before the first. ``recipe``: the hyper-parameter recipe the method trains with by default (None:
    the data set's); ``batch_fields``: the batch entries it needs beyond image and target.

    ``topology``: TopKD's topology term (`distiller.topkd.TopologyTerm`, ``loss_tda``) when attached, else
    None; ``with_topology = False`` says the term does not compose with the method (TGD).
    """

    term: Optional[str] = None
    with_topology: bool = True
    options: Tuple[Option, ...] = LOSS_WEIGHTS
    defaults: Dict[str, Any] = dict(gamma=1.0, alpha=0.0, beta=0.0)
    defaults_source: str = "RepDistiller"

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module] = None, gamma: Optional[float] = None,
                 alpha: Optional[float] = None, beta: Optional[float] = None, kd_T: float = 4.0,
                 in_channels: int = 3, image_size: int = 32, kd_reduction: str = "batchmean"):
        if teacher is None:
            raise ValueError(f"method {type(self).__name__} needs a teacher: pass --path_t")
        super().__init__(student, teacher)
        given = dict(gamma=gamma, alpha=alpha, beta=beta)
        for key, value in given.items():
            setattr(self, key, float(self.defaults[key] if value is None else value))
        self.kd = DistillKL(kd_T, kd_reduction)
        self._epoch: Optional[int] = None
        self._probe = (int(in_channels), int(image_size))
        self._feat_shapes: Dict[str, List[Tuple[int, ...]]] = {}
        self.topology: Optional[nn.Module] = None  # (feats_s, feats_t) -> delta * TDA; set by train_student.py

    @property
    def feat_shapes_s(self) -> List[Tuple[int, ...]]:
        """Shapes of the student's ``feats`` for a 2-image probe batch (probed once, on first use)."""
        if "s" not in self._feat_shapes:
            self._feat_shapes["s"] = probe_feature_shapes(self.student, *self._probe)
        return self._feat_shapes["s"]

    @property
    def feat_shapes_t(self) -> List[Tuple[int, ...]]:
        """Shapes of the teacher's ``feats`` for a 2-image probe batch (probed once, on first use)."""
        if "t" not in self._feat_shapes:
            self._feat_shapes["t"] = probe_feature_shapes(self.teacher, *self._probe)
        return self._feat_shapes["t"]

    # -- building from the command line ---------------------------------------------------------
    @classmethod
    def prepare(cls, cfg: argparse.Namespace, data) -> Tuple[Any, Dict[str, Any]]:
        """-> ``(data, keywords)``: the data the method trains on (possibly wrapped) and the constructor
        keywords it needs beyond its options. ``data``: a `datasets.DataBundle`; ``cfg``: resolved options."""
        return data, dict(in_channels=data.in_channels, image_size=int(data.image_size))

    @classmethod
    def from_config(cls, cfg: argparse.Namespace, student: nn.Module, teacher: nn.Module, data):
        """-> ``(distiller, data)`` from the resolved options in ``cfg`` (see `distiller.options.resolve`)."""
        data, keywords = cls.prepare(cfg, data)
        return cls(student, teacher, **resolve(cls, cfg), **keywords), data

    @classmethod
    def run_tag(cls, cfg: argparse.Namespace) -> Tuple[str, str]:
        """-> ``(label, parameters)`` of the run-folder name, e.g. ``("crd", "r-1.0_a-0.0_b-0.8")``; a weight the
        method does not use (`unused_options`: ``-b`` of KD) is left out (``("kd", "r-0.1_a-0.9")``). A method
        with options of its own overrides it to add them (the identity hash separates runs anyway; the name
        should say it too)."""
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
        """The one epoch channel: the trainer calls it before each training epoch (counted from 1)."""
        self._epoch = int(epoch)

    @property
    def epoch(self) -> Optional[int]:
        """The epoch being trained (the last `set_epoch`), None before the first."""
        return self._epoch

    def loss_summary(self) -> str:
        """e.g. ``1.0*CE + 2.0*KD(T=4.0) + 5.0*tda``: the terms that are computed, with their weights."""
        parts = [f"{self.gamma}*CE"]
        if self.alpha:
            parts.append(f"{self.alpha}*KD(T={self.kd.T})")
        if self.beta and self.term is not None:
            parts.append(f"{self.beta}*{self.term[len('loss_'):]}")
        if self.topology is not None:
            parts.append(f"{self.topology.delta}*tda")
        return " + ".join(parts)

    def method_modules(self) -> Iterable[nn.Module]:
        """Trainable modules of the method itself (regressors, embeddings)."""
        return ()

    def extra_modules(self) -> Iterable[nn.Module]:
        """Method modules plus the topology term (whose frozen RipsNet `learnable_parameters` leaves out)."""
        return [*self.method_modules(), *([self.topology] if self.topology is not None else [])]

    def learnable_parameters(self) -> List[nn.Parameter]:
        """Student and extra-module parameters that require gradients (frozen helpers never included)."""
        return [p for p in super().learnable_parameters() if p.requires_grad]

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch) -> torch.Tensor:
        raise NotImplementedError

    # -- training step -----------------------------------------------------------------------------
    def forward_train(self, image, target, **batch) -> Tuple[torch.Tensor, Losses]:
        with torch.no_grad():
            feats_t, logit_t = self.teacher(image, is_feat=True)
        feats_s, logit_s = self.student(image, is_feat=True)
        losses: Losses = {"loss_ce": self.gamma * F.cross_entropy(logit_s, target)}
        if self.alpha:
            losses["loss_kd"] = self.alpha * self.kd(logit_s, logit_t)
        if self.beta and self.term is not None:
            losses[self.term] = self.beta * self.method_loss(feats_s, logit_s, feats_t, logit_t, target, **batch)
        if self.topology is not None:
            losses["loss_tda"] = self.topology(feats_s, feats_t)
        return logit_s, losses
