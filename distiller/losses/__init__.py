"""Loss modules of the distillation methods, one small module per family.

Each takes student and teacher tensors and returns an unweighted scalar; the distillers weight them.
"""
from .kd import KD_REDUCTIONS, DistillKL, kd_loss
from .hint import HintLoss, Regressor
from .attention import AttentionLoss
from .similarity import SimilarityLoss
from .rkd import RKDLoss
from .pkt import PKTLoss
from .crd import CRDLoss
from .dkd import DKDLoss, dkd_loss

__all__ = [
    "DistillKL", "kd_loss", "KD_REDUCTIONS", "HintLoss", "Regressor", "AttentionLoss", "SimilarityLoss", "RKDLoss",
    "PKTLoss", "CRDLoss", "DKDLoss", "dkd_loss",
]
