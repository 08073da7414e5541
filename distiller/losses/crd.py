"""Contrastive representation distillation (Tian et al. 2020), memory-bank NCE form.

Negatives are drawn uniformly over the sample indices (the positive's own index sits in column 0),
unless the batch supplies ``contrast_idx`` ``[B, K+1]`` (e.g. from a class-aware sampler).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class Embed(nn.Module):
    """``[B, ...]`` -> ``[B, feat_dim]``: linear projection then L2 normalization."""

    def __init__(self, dim_in: int, feat_dim: int = 128):
        super().__init__()
        self.linear = nn.Linear(dim_in, feat_dim)

    def forward(self, x):
        return F.normalize(self.linear(x.flatten(1)), dim=1)


class ContrastMemory(nn.Module):
    """Two memory banks (student ``mem_s``, teacher ``mem_t``), each ``[n_data, feat_dim]``, unit rows.

    ``forward(v_s, v_t, index, contrast_idx)`` returns ``(out_s, out_t)``, each ``[B, K+1]``: the
    normalized scores ``exp(<memory, v> / T) / Z`` of each embedding against the other side's memory
    rows (column 0 is the positive). ``Z`` is fixed on the first call as ``mean(exp(...)) * n_data``.
    Afterwards the positives' memory rows move towards the new embeddings with ``momentum``.
    """

    def __init__(self, feat_dim: int, n_data: int, nce_k: int = 16384, nce_t: float = 0.07, momentum: float = 0.5):
        super().__init__()
        self.n_data, self.nce_k, self.nce_t, self.momentum = n_data, nce_k, nce_t, momentum
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        self.register_buffer("mem_s", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("mem_t", torch.rand(n_data, feat_dim) * 2 * stdv - stdv)
        self.register_buffer("z", torch.full((2,), -1.0))  # normalizers for (out_s, out_t); < 0 = unset

    def sample(self, index: torch.Tensor) -> torch.Tensor:
        idx = torch.randint(0, self.n_data, (index.shape[0], self.nce_k + 1), device=index.device)
        idx[:, 0] = index
        return idx

    def forward(self, v_s, v_t, index, contrast_idx: Optional[torch.Tensor] = None):
        idx = self.sample(index) if contrast_idx is None else contrast_idx.to(index.device).long()
        w_t = self.mem_t[idx].detach()  # [B, K+1, D]
        w_s = self.mem_s[idx].detach()
        out_s = torch.exp(torch.bmm(w_t, v_s.unsqueeze(2)).squeeze(2) / self.nce_t)
        out_t = torch.exp(torch.bmm(w_s, v_t.unsqueeze(2)).squeeze(2) / self.nce_t)
        if self.z[0] < 0:
            with torch.no_grad():
                self.z[0] = out_s.mean() * self.n_data
                self.z[1] = out_t.mean() * self.n_data
        out_s = out_s / self.z[0]
        out_t = out_t / self.z[1]
        with torch.no_grad():
            for mem, v in ((self.mem_s, v_s), (self.mem_t, v_t)):
                new = mem[index] * self.momentum + v.detach() * (1 - self.momentum)
                mem.index_copy_(0, index, F.normalize(new, dim=1))
        return out_s, out_t


def nce_loss(scores: torch.Tensor, n_data: int, eps: float = 1e-7) -> torch.Tensor:
    """NCE loss of ``[B, K+1]`` scores (column 0 positive) against a uniform noise ``1 / n_data``."""
    b, k = scores.shape[0], scores.shape[1] - 1
    noise = k / n_data
    log_d1 = torch.log(scores[:, 0] / (scores[:, 0] + noise + eps))
    log_d0 = torch.log(noise / (scores[:, 1:] + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / b


class CRDLoss(nn.Module):
    """Embeds both ``[B, ...]`` features to ``feat_dim``, scores them with :class:`ContrastMemory`,
    and returns the student-side plus teacher-side NCE losses. ``index``: ``[B]`` dataset indices."""

    def __init__(self, s_dim: int, t_dim: int, n_data: int, feat_dim: int = 128, nce_k: int = 16384,
                 nce_t: float = 0.07, nce_m: float = 0.5):
        super().__init__()
        if n_data <= 0:
            raise ValueError(f"CRD needs the training-set size (n_data > 0), got {n_data}")
        self.embed_s = Embed(s_dim, feat_dim)
        self.embed_t = Embed(t_dim, feat_dim)
        self.memory = ContrastMemory(feat_dim, n_data, nce_k, nce_t, nce_m)
        self.n_data = n_data

    def forward(self, f_s, f_t, index, contrast_idx=None):
        if index is None:
            raise ValueError("CRD needs the sample index of each image: the data set must yield (image, target, index)")
        v_s, v_t = self.embed_s(f_s), self.embed_t(f_t)
        out_s, out_t = self.memory(v_s, v_t, index.long(), contrast_idx)
        return nce_loss(out_s, self.n_data) + nce_loss(out_t, self.n_data)
