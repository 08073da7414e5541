"""What every teacher -> student method shares (RepDistiller's train_student semantics):

``loss = gamma * CE + alpha * KD + beta * method term + delta * TDA`` (TopKD's topology term, held as
``topology`` when attached), each term returned separately, already weighted; a term of weight 0 is not computed."""
import argparse
import copy
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from topkd_io import TopKDError

from .base import Distiller, Losses
from .losses import DistillKL
from .options import LOSS_WEIGHTS, Option, declared, resolve


def fresh_twin(network: nn.Module) -> nn.Module:
    """A copy of ``network`` with every layer's parameters drawn afresh: the contract tests' teacher for a method
    that needs maps of equal shapes in both networks."""
    twin = copy.deepcopy(network)
    for module in twin.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return twin


def stage_maps(method: "TeacherStudent", name: str) -> List[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """``[(student shape, teacher shape)]`` of the stage maps ``feats[1:-1]`` paired one to one; refuses
    networks with different numbers of stages (RepDistiller's ``zip`` would silently drop the extra ones)."""
    maps_s, maps_t = method.feat_shapes_s[1:-1], method.feat_shapes_t[1:-1]
    if len(maps_s) != len(maps_t) or not maps_s or any(len(s) != 4 for s in maps_s + maps_t):
        raise TopKDError(f"--distill {name} pairs the stage maps one to one, but the student has {len(maps_s)} and "
                         f"the teacher {len(maps_t)}: pick networks with as many stages, or another method")
    return list(zip(maps_s, maps_t))


class TeacherStudent(Distiller):
    """Base of every method with a teacher. A method sets ``term`` (the loss key of its own term), declares its
    ``options`` (`distiller.options`; the loss weights are declared here) and their ``defaults`` for it, and
    writes `method_loss`. ``feat_shapes_s`` / ``feat_shapes_t`` (probed on first use) size its modules;
    ``self.epoch`` is the epoch being trained (from 1; None before the first `set_epoch`); ``preact`` names the
networks whose maps it reads before their last ReLU (``model(x, is_feat=True, preact=True)``). ``topology``: TopKD's
    term when attached (``with_topology = False``: it does not compose with the method, as TGD)."""

    term: Optional[str] = None
    preact: Tuple[str, ...] = ()  # the networks ("student", "teacher") whose maps it reads before their last ReLU
    with_topology: bool = True
    options: Tuple[Option, ...] = LOSS_WEIGHTS
    defaults: Dict[str, Any] = dict(gamma=1.0, alpha=0.0, beta=0.0)
    defaults_source: str = "RepDistiller"

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module] = None, gamma: Optional[float] = None,
                 alpha: Optional[float] = None, beta: Optional[float] = None, kd_T: float = 4.0,
                 in_channels: int = 3, image_size: int = 32, kd_reduction: str = "batchmean"):
        if teacher is None:
            raise TopKDError(f"method {type(self).__name__} needs a teacher: pass --path_t")
        super().__init__(student, teacher)
        for key, value in dict(gamma=gamma, alpha=alpha, beta=beta).items():
            setattr(self, key, float(self.defaults[key] if value is None else value))
        self.kd = DistillKL(kd_T, kd_reduction)
        self.epoch: Optional[int] = None
        self._probe = (int(in_channels), int(image_size), int(image_size))
        self._feat_shapes: Dict[str, List[Tuple[int, ...]]] = {}
        self.topology: Optional[nn.Module] = None  # (feats_s, feats_t) -> delta * TDA; set by train_student.py

    @torch.no_grad()
    def _probed(self, who: str) -> List[Tuple[int, ...]]:
        """Shapes of ``feats`` of the network ``who`` for a 2-image batch ``[2, C, S, S]`` (eval mode), probed once."""
        if who not in self._feat_shapes:
            model = getattr(self, who)
            was_training, p = model.training, next(model.parameters())
            feats, _ = model.eval()(torch.zeros(2, *self._probe, device=p.device, dtype=p.dtype), is_feat=True)
            model.train(was_training)
            self._feat_shapes[who] = [tuple(f.shape) for f in feats]
        return self._feat_shapes[who]

    feat_shapes_s = property(lambda self: self._probed("student"), doc="shapes of the student's ``feats``")
    feat_shapes_t = property(lambda self: self._probed("teacher"), doc="shapes of the teacher's ``feats``")

    # -- building from the command line ---------------------------------------------------------
    @classmethod
    def prepare(cls, cfg: argparse.Namespace, data) -> Tuple[Any, Dict[str, Any]]:
        """-> ``(data, keywords)``: the data the method trains on (possibly wrapped) and constructor keywords
        beyond its options, or options whose values the data changed (CRD's ``nce_k``)."""
        return data, dict(in_channels=data.in_channels, image_size=int(data.image_size))

    @classmethod
    def from_config(cls, cfg: argparse.Namespace, student: nn.Module, teacher: nn.Module, data):
        """-> ``(distiller, data, options)``: the method built from the resolved options in ``cfg``, the data it
        trains on, and its options as built (recorded in config.yaml by the stage)."""
        data, keywords = cls.prepare(cfg, data)
        values = {**resolve(cls, cfg), **keywords}
        return cls(student, teacher, **values), data, {o.name: values[o.name] for o in declared(cls)}

    @classmethod
    def run_tag(cls, cfg: argparse.Namespace) -> Tuple[str, str]:
        """-> ``(label, parameters)`` of the run-folder name (``("kd", "r-0.1_a-0.9")``: unused weights left out)."""
        unused = cls.unused_options(cfg)
        parts = [f"{short}-{float(getattr(cfg, name))}" for name, short in (("gamma", "r"), ("alpha", "a"), ("beta", "b"))
                 if name not in unused]
        return cfg.distill, "_".join(parts)

    @classmethod
    def unused_options(cls, cfg: argparse.Namespace) -> Tuple[str, ...]:
        """Weights no term uses (KD's ``beta``): left out of the run name and identity."""
        return ("beta",) if cls.term is None else ()

    # -- hooks -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """The one epoch channel: the trainer calls it before each training epoch (counted from 1)."""
        self.epoch = int(epoch)

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
        return [*self.method_modules(), *([self.topology] if self.topology is not None else [])]

    def method_loss(self, feats_s, logit_s, feats_t, logit_t, target, **batch) -> torch.Tensor:
        raise NotImplementedError

    # -- training step -----------------------------------------------------------------------------
    def _preact(self, who: str) -> Dict[str, bool]:
        return {"preact": True} if who in self.preact else {}

    def forward_train(self, image, target, **batch) -> Tuple[torch.Tensor, Losses]:
        with torch.no_grad():
            feats_t, logit_t = self.teacher(image, is_feat=True, **self._preact("teacher"))
        feats_s, logit_s = self.student(image, is_feat=True, **self._preact("student"))
        losses: Losses = {"loss_ce": self.gamma * F.cross_entropy(logit_s, target)}
        if self.alpha:
            losses["loss_kd"] = self.alpha * self.kd(logit_s, logit_t)
        if self.beta and self.term is not None:
            losses[self.term] = self.beta * self.method_loss(feats_s, logit_s, feats_t, logit_t, target, **batch)
        if self.topology is not None:
            losses["loss_tda"] = self.topology(feats_s, feats_t)
        return logit_s, losses
