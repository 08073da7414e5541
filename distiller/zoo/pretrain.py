"""RepDistiller's pre-training stage (HobbitLong/RepDistiller helper/pretrain.py), shared by AB, FT and FSP.

Before epoch 1 the trainer runs ``--init_epochs`` epochs (default 30, RepDistiller's) that minimise the method's
`Pretrained.pretrain_loss` alone, over `Pretrained.pretrain_parameters` only, with an SGD of their own at
`Pretrained.pretrain_lr` (the recipe's momentum and weight decay, no schedule). Pre-training epoch ``k`` reaches
the method through the one epoch channel as ``set_epoch(-k)`` (and keys the training items by ``-k``); the main
epochs are 1, 2, ... as for every method (`engine.trainer.Trainer.pretrain_epoch`)."""
from typing import List

import torch
from torch import nn

from ..options import Option
from ..teacher_student import TeacherStudent

INIT_EPOCHS = Option("init_epochs", 30, "epochs of the method's pre-training stage, run before epoch 1",
                     source="RepDistiller train_student.py --init_epochs", low=0)


class Pretrained(TeacherStudent):
    """A teacher -> student method with a pre-training stage. ``trains_student``: whether the stage trains the
    student's feature layers (AB, FSP: train mode, gradients) or only modules of the method (FT: the student is
    run in eval mode without gradients, as RepDistiller's ``model_s.eval()``)."""

    options = (INIT_EPOCHS,)
    trains_student = True

    def __init__(self, student, teacher=None, init_epochs: int = 30, **kwargs):
        super().__init__(student, teacher, **kwargs)
        self.init_epochs = int(init_epochs)

    def student_body(self) -> List[nn.Parameter]:
        """The student's parameters but its classifier's (RepDistiller's ``get_feat_modules``)."""
        head = getattr(self.student, "head", "fc")
        return [p for name, p in self.student.named_parameters() if name.split(".")[0] != head]

    def pretrain_parameters(self) -> List[nn.Parameter]:
        raise NotImplementedError

    def pretrain_lr(self, lr: float) -> float:
        """The stage's learning rate given the main one (RepDistiller: the main one, but FT's)."""
        return lr

    def pretrain_loss(self, feats_s, feats_t) -> torch.Tensor:
        raise NotImplementedError

    def forward_train(self, image, target, **batch):
        if self.epoch is None or self.epoch > 0:
            return super().forward_train(image, target, **batch)
        with torch.no_grad():
            feats_t, _ = self.teacher(image, is_feat=True, **self._preact("teacher"))
        self.student.train(self.trains_student)
        with torch.set_grad_enabled(self.trains_student):
            feats_s, logit_s = self.student(image, is_feat=True, **self._preact("student"))
        return logit_s, {"loss_init": self.pretrain_loss(feats_s, feats_t)}

    def loss_summary(self) -> str:
        return f"{super().loss_summary()}, after {self.init_epochs} pre-training epochs"

    @classmethod
    def run_tag(cls, cfg):
        label, params = super().run_tag(cfg)
        return label, f"{params}_ie-{int(cfg.init_epochs)}"
