"""The contract of every method, and `Vanilla` (plain cross-entropy: teachers and the CE-only baseline).

`forward_train(image, target, **batch)` -> ``(student_logits [B, K], losses)``, ``losses`` mapping a term name
(``"loss_ce"``, ...) to an already weighted scalar; the trainer sums and logs them. ``batch_fields``: the batch
entries beyond image/target a method needs; ``recipe``: its hyper-parameter recipe (None = the data set's)."""
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register

Losses = Dict[str, torch.Tensor]


class Distiller(nn.Module):
    """Holds ``student`` (trained) and an optional ``teacher``, frozen (see `freeze`)."""

    batch_fields: Tuple[str, ...] = ()
    recipe: Optional[str] = None

    def __init__(self, student: nn.Module, teacher: Optional[nn.Module] = None):
        super().__init__()
        self._frozen: List[str] = []
        self.student = student
        self.freeze("teacher", teacher)

    @classmethod
    def example(cls, student: nn.Module, teacher: nn.Module, batch: Dict[str, torch.Tensor]):
        """-> ``(distiller, batch)``: the method with its defaults, built without data or files, and ``batch``
        (``image``, ``target``, ``index``) with any field it needs beyond them (for the contract tests)."""
        return cls(student, teacher), batch

    def freeze(self, name: str, network: Optional[nn.Module]) -> Optional[nn.Module]:
        """Hold ``network`` as the attribute ``name``, frozen: no gradients, always in eval mode, left out of
        `learnable_parameters`, of the checkpoint's ``distiller`` state and of DDP's reduction."""
        setattr(self, name, network)
        if network is not None:
            network.requires_grad_(False).eval()
            if name not in self._frozen:
                self._frozen.append(name)
        return network

    def frozen_networks(self) -> Dict[str, nn.Module]:
        return {name: getattr(self, name) for name in self._frozen}

    def networks(self) -> Dict[str, nn.Module]:
        return {"student": self.student, **self.frozen_networks()}

    def train(self, mode: bool = True):
        super().train(mode)
        for network in self.frozen_networks().values():
            network.eval()
        return self

    def learnable_parameters(self) -> List[nn.Parameter]:
        return [p for m in (self.student, *self.extra_modules()) for p in m.parameters() if p.requires_grad]

    def extra_modules(self) -> Iterable[nn.Module]:
        return ()

    def forward_train(self, image: torch.Tensor, target: torch.Tensor, **batch) -> Tuple[torch.Tensor, Losses]:
        raise NotImplementedError

    def loss_summary(self) -> str:
        """The loss with its weights resolved (run header, config.yaml)."""
        return "1.0*CE"

    def forward_test(self, image: torch.Tensor) -> torch.Tensor:
        return self.student(image)

    def forward(self, image, target=None, **batch):
        return self.forward_train(image, target, **batch) if self.training else self.forward_test(image)


@register("vanilla")
class Vanilla(Distiller):
    """``loss_ce = gamma * CE(student(image), target)``; no teacher."""

    def __init__(self, student, teacher=None, gamma: float = 1.0):
        super().__init__(student, None)
        self.gamma = gamma

    def forward_train(self, image, target, **batch):
        logits = self.student(image)
        return logits, {"loss_ce": self.gamma * F.cross_entropy(logits, target)}
