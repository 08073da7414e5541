"""The Distiller contract shared by every method (teacher training included, as `Vanilla`).

`forward_train(image, target, **batch)` returns ``(student_logits [B, K], losses)`` where ``losses`` maps
a term name (``"loss_ce"``, ``"loss_kd"``, ...) to an already weighted scalar tensor; the trainer sums the
dict and logs every term. `forward_test(image)` returns the student's logits. The teacher, and any further
frozen network a method holds (`freeze`: TGD's PI teacher), is frozen (``requires_grad=False``) and stays
in eval mode whatever ``train()`` is called with.

What a method declares for the engine (class attributes): ``batch_fields``, the batch entries beyond
``image``/``target`` it needs (the trainer refuses data that does not yield them), and, for student
methods, ``recipe`` (the hyper-parameter recipe it trains with by default; None = the data set's).
The epoch reaches a method through one channel, `set_epoch` (called by the trainer before each epoch).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

Losses = Dict[str, torch.Tensor]


class Distiller(nn.Module):
    """Base class: holds ``student`` (trained) and an optional frozen ``teacher``."""

    batch_fields: Tuple[str, ...] = ()
    recipe: Optional[str] = None

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module] = None):
        super().__init__()
        self._frozen: List[str] = []
        self.student = student
        self.freeze("teacher", teacher)

    @classmethod
    def example(cls, student: nn.Module, teacher: nn.Module, batch: Dict[str, torch.Tensor]):
        """-> ``(distiller, batch)``: the method with its default options on small networks, built without data
        or files, and ``batch`` (``image`` ``[B, C, S, S]``, ``target`` ``[B]``, ``index`` ``[B]``) with any further
        field it needs. The contract tests build every registered method with it; a method whose constructor
        needs more than its options (CRD's memory bank, TGD's PI teacher) overrides it."""
        return cls(student, teacher), batch

    def freeze(self, name: str, network: Optional[nn.Module]) -> Optional[nn.Module]:
        """Hold ``network`` as the attribute ``name``, frozen: no gradients, always in eval mode, left out of
        `learnable_parameters`, of the checkpoint's ``distiller`` state and of DDP's reduction."""
        setattr(self, name, network)
        if network is not None:
            for p in network.parameters():
                p.requires_grad_(False)
            network.eval()
            if name not in self._frozen:
                self._frozen.append(name)
        return network

    def frozen_networks(self) -> Dict[str, nn.Module]:
        """Attribute name -> frozen network (``teacher`` and what `freeze` added)."""
        return {name: getattr(self, name) for name in self._frozen}

    def networks(self) -> Dict[str, nn.Module]:
        """Attribute name -> every network a step runs: the student, then the frozen ones."""
        return {"student": self.student, **self.frozen_networks()}

    def train(self, mode: bool = True):
        super().train(mode)
        for network in self.frozen_networks().values():
            network.eval()
        return self

    def learnable_parameters(self) -> List[nn.Parameter]:
        """Everything the optimizer updates: the student plus extra modules (projectors, embeddings)."""
        params = list(self.student.parameters())
        for module in self.extra_modules():
            params.extend(module.parameters())
        return params

    def extra_modules(self) -> Iterable[nn.Module]:
        """Trainable modules beyond the student (override in methods that add projectors)."""
        return ()

    def forward_train(self, image: torch.Tensor, target: torch.Tensor, **batch) -> Tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    def loss_summary(self) -> str:
        """The loss as it will be computed, weights resolved (printed in the run header, kept in config.yaml)."""
        return "1.0*CE"

    def forward_test(self, image: torch.Tensor) -> torch.Tensor:
        return self.student(image)

    def forward(self, image, target=None, **batch):
        if self.training:
            return self.forward_train(image, target, **batch)
        return self.forward_test(image)
