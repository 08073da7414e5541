"""Loss terms of the distillation methods: modules and functions of student and teacher tensors, each returning
an unweighted scalar (the methods weight them). One section per method family."""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from topkd_io import TopKDError


# --- Hinton's knowledge distillation term (RepDistiller's ``DistillKL``), with the divisor as an option.
def kd_loss(logit_s: torch.Tensor, logit_t: torch.Tensor, T: float = 4.0, reduction: str = "batchmean") -> torch.Tensor:
    """KL(p_t || p_s) of ``[B, K]`` logits at temperature ``T``, summed, times ``T**2``, divided by the batch
    (``"batchmean"``: Hinton, RepDistiller, TopKD) or by batch x classes (``"mean"``: TGD's code, a K-times smaller
    term). At least float32 (half logits under autocast are upcast)."""
    logit_s, logit_t = (x.to(torch.promote_types(x.dtype, torch.float32)) for x in (logit_s, logit_t))
    log_p_s = F.log_softmax(logit_s / T, dim=1)
    p_t = F.softmax(logit_t / T, dim=1)
    divisor = {"batchmean": logit_s.shape[0], "mean": logit_s.numel()}[reduction]
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T * T) / divisor


class DistillKL(nn.Module):
    def __init__(self, T: float = 4.0, reduction: str = "batchmean"):
        super().__init__()
        self.T = float(T)
        self.reduction = reduction

    def forward(self, logit_s, logit_t):
        return kd_loss(logit_s, logit_t, self.T, self.reduction)


# --- FitNet hints: a learnable regressor maps the student's feature to the teacher's shape, then MSE.
class Regressor(nn.Module):
    """FitNet's regressor (RepDistiller's ``ConvReg``, its parameter names): ``[B, Cs, Hs, Ws]`` ->
    ``[B, Ct, Ht, Wt]`` by one convolution chosen from the spatial sizes, then BatchNorm and ReLU; vectors
    ``[B, Cs]`` (pooled embeddings, which ConvReg does not cover) -> ``[B, Ct]`` by a linear layer."""

    def __init__(self, s_shape: Sequence[int], t_shape: Sequence[int]):
        super().__init__()
        if len(s_shape) != len(t_shape) or len(s_shape) not in (2, 4):
            raise TopKDError(f"hint layers must both be vectors [B, C] or both maps [B, C, H, W]; got student "
                             f"{tuple(s_shape)} and teacher {tuple(t_shape)}: pick matching --hint_layer")
        if len(s_shape) == 2:
            self.linear = nn.Linear(s_shape[1], t_shape[1])
            return
        (_, s_c, s_h, s_w), (_, t_c, t_h, t_w) = s_shape, t_shape
        if s_h == 2 * t_h:  # 3x3, stride 2
            self.conv: nn.Module = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
        elif 2 * s_h == t_h:  # 4x4 transposed, stride 2
            self.conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
        elif s_h >= t_h and s_w >= t_w:  # no padding: 1x1 for maps of one size (the common case)
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
        else:
            raise TopKDError(f"FitNet cannot map a student map of {s_h}x{s_w} to a teacher map of {t_h}x{t_w} "
                             f"(the student's must be at least as large, or half); pick another --hint_layer")
        self.bn = nn.BatchNorm2d(t_c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, f_s: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "linear"):
            return self.linear(f_s)
        return self.relu(self.bn(self.conv(f_s)))


class HintLoss(nn.Module):
    def forward(self, f_s_regressed: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(f_s_regressed, f_t)


# --- Attention transfer (Zagoruyko & Komodakis 2017), RepDistiller's form with p = 2.
def attention_map(f: torch.Tensor, p: int = 2) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, H*W]``: channel mean of ``|f|**p`` (RepDistiller: ``f**p``), L2-normalized."""
    return F.normalize(f.pow(p).mean(1).flatten(1), dim=1)


def same_size(f_s: torch.Tensor, f_t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Maps ``[B, C, H, W]`` -> the larger one average-pooled to the other's height (RepDistiller pools the
    larger of the two to ``(H, H)`` of the smaller)."""
    h_s, h_t = f_s.shape[2], f_t.shape[2]
    if h_s > h_t:
        f_s = F.adaptive_avg_pool2d(f_s, (h_t, h_t))
    elif h_s < h_t:
        f_t = F.adaptive_avg_pool2d(f_t, (h_s, h_s))
    return f_s, f_t


class AttentionLoss(nn.Module):
    """Sum over layer pairs of ``mean((at(f_s) - at(f_t))**2)``; larger maps are pooled to the smaller size."""

    def __init__(self, p: int = 2):
        super().__init__()
        self.p = p

    def pair(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = same_size(f_s, f_t)
        return (attention_map(f_s, self.p) - attention_map(f_t, self.p)).pow(2).mean()

    def forward(self, feats_s: Sequence[torch.Tensor], feats_t: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum(self.pair(s, t) for s, t in zip(feats_s, feats_t))


# --- Similarity-preserving KD (Tung & Mori 2019).
class SimilarityLoss(nn.Module):
    """``||norm(G_s) - norm(G_t)||_F**2 / B**2``, ``G = f f^T`` ``[B, B]`` with L2-normalized rows."""

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        b = f_s.shape[0]
        f_s, f_t = f_s.flatten(1), f_t.flatten(1)
        g_s = F.normalize(f_s @ f_s.t(), dim=1)
        g_t = F.normalize(f_t @ f_t.t(), dim=1)
        return (g_s - g_t).pow(2).sum() / (b * b)


# --- Relational KD (Park et al. 2019): distance-wise and angle-wise smooth-L1 terms.
def _pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``[B, D]`` -> ``[B, B]`` Euclidean distances with a zero diagonal."""
    sq = e.pow(2).sum(1)
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * e @ e.t()).clamp(min=eps)
    d = d2.sqrt().clone()
    d[range(len(e)), range(len(e))] = 0
    return d


def _angles(e: torch.Tensor) -> torch.Tensor:
    """``[B, D]`` -> ``[B*B*B]`` cosines of the angle at j between (i - j) and (k - j)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


class RKDLoss(nn.Module):
    """``w_dist * RKD-D + w_angle * RKD-A`` on ``[B, D]`` embeddings (defaults 25 and 50)."""

    def __init__(self, w_dist: float = 25.0, w_angle: float = 50.0):
        super().__init__()
        self.w_dist, self.w_angle = w_dist, w_angle

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        s, t = f_s.flatten(1), f_t.flatten(1)
        with torch.no_grad():
            d_t = _pairwise_distances(t)
            d_t = d_t / d_t[d_t > 0].mean()
            a_t = _angles(t)
        d_s = _pairwise_distances(s)
        d_s = d_s / d_s[d_s > 0].mean()
        loss_d = F.smooth_l1_loss(d_s, d_t)
        loss_a = F.smooth_l1_loss(_angles(s), a_t)
        return self.w_dist * loss_d + self.w_angle * loss_a


# --- Probabilistic knowledge transfer (Passalis & Tefas 2018), cosine-similarity kernel.
def _conditional_probs(f: torch.Tensor, eps: float) -> torch.Tensor:
    """``[B, D]`` -> ``[B, B]``: cosine similarities mapped to [0, 1], each row divided by its sum."""
    f = f / (f.norm(dim=1, keepdim=True) + eps)
    f = torch.nan_to_num(f)
    sim = (f @ f.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


class PKTLoss(nn.Module):
    """Mean over the ``[B, B]`` entries of ``p_t * log((p_t + eps) / (p_s + eps))``."""

    def __init__(self, eps: float = 1e-7):
        super().__init__()
        self.eps = eps

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        p_s = _conditional_probs(f_s.flatten(1), self.eps)
        p_t = _conditional_probs(f_t.flatten(1), self.eps)
        return torch.mean(p_t * torch.log((p_t + self.eps) / (p_s + self.eps)))


# --- Decoupled KD (Zhao et al. 2022): target-class (TCKD) and non-target-class (NCKD) terms.
def dkd_loss(logit_s, logit_t, target, alpha: float = 1.0, beta: float = 8.0, T: float = 4.0) -> torch.Tensor:
    """``alpha * TCKD + beta * NCKD``; both KL sums x ``T**2`` / batch. logits ``[B, K]``, target ``[B]``."""
    b = logit_s.shape[0]
    gt = F.one_hot(target, logit_s.shape[1]).to(logit_s.dtype)
    p_s = F.softmax(logit_s / T, dim=1)
    p_t = F.softmax(logit_t / T, dim=1)
    # binary (target, rest) distributions
    bin_s = torch.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], dim=1)
    bin_t = torch.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(bin_s), bin_t, reduction="sum") * T * T / b
    # distributions over the non-target classes (target logit pushed to -inf-ish)
    log_q_s = F.log_softmax(logit_s / T - 1000.0 * gt, dim=1)
    q_t = F.softmax(logit_t / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_q_s, q_t, reduction="sum") * T * T / b
    return alpha * tckd + beta * nckd


class DKDLoss(nn.Module):
    """:func:`dkd_loss` scaled by the warm-up ``min(epoch / warmup, 1)`` (epochs counted from 1; None: 1)."""

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, T: float = 4.0, warmup: int = 20):
        super().__init__()
        self.alpha, self.beta, self.T, self.warmup = alpha, beta, T, warmup

    def forward(self, logit_s, logit_t, target, epoch=None):
        factor = 1.0 if epoch is None or self.warmup <= 0 else min(float(epoch) / self.warmup, 1.0)
        return factor * dkd_loss(logit_s, logit_t, target, self.alpha, self.beta, self.T)


# --- Contrastive representation distillation (Tian et al. 2020), memory-bank NCE form.
# Negatives are drawn uniformly over the sample indices (the positive's own index sits in column 0),
# unless the batch supplies ``contrast_idx`` ``[B, K+1]`` (e.g. from a class-aware sampler).
class Embed(nn.Module):
    """``[B, ...]`` -> ``[B, feat_dim]``: linear projection then L2 normalization."""

    def __init__(self, dim_in: int, feat_dim: int = 128):
        super().__init__()
        self.linear = nn.Linear(dim_in, feat_dim)

    def forward(self, x):
        return F.normalize(self.linear(x.flatten(1)), dim=1)


class ContrastMemory(nn.Module):
    """Memory banks ``mem_s``, ``mem_t`` ``[n_data, feat_dim]``; ``forward`` -> ``(out_s, out_t)`` ``[B, K+1]``: scores
    ``exp(<memory, v> / T) / Z`` of each embedding against the other side's rows (column 0 the positive), ``Z``
    fixed on the first call as ``mean(exp(...)) * n_data``; then the positives' rows move towards the embeddings."""

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
        self.embed_s = Embed(s_dim, feat_dim)
        self.embed_t = Embed(t_dim, feat_dim)
        self.memory = ContrastMemory(feat_dim, n_data, nce_k, nce_t, nce_m)
        self.n_data = n_data

    def forward(self, f_s, f_t, index, contrast_idx=None):
        v_s, v_t = self.embed_s(f_s), self.embed_t(f_t)
        out_s, out_t = self.memory(v_s, v_t, index.long(), contrast_idx)
        return nce_loss(out_s, self.n_data) + nce_loss(out_t, self.n_data)
