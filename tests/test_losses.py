"""Golden values of the loss modules against hand-derived numbers or independent numpy formulas."""
import math

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from distiller.losses import (AttentionLoss, CRDLoss, DistillKL, DKDLoss, HintLoss, PKTLoss, Regressor,
                              RKDLoss, SimilarityLoss, dkd_loss)
from distiller.losses import nce_loss
from distiller.options import KD_T

torch.manual_seed(0)
RNG = np.random.default_rng(0)


def _softmax(x, axis=1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_ce_hand_value():
    # two classes, logits (0, ln 3): p(class 1) = 3/4 -> CE = -ln(3/4)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert F.cross_entropy(logits, torch.tensor([1])).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_kd_hand_value():
    # T = 1, one sample: p_t = (1/2, 1/2), p_s = (1/4, 3/4) -> KL = 1/2 ln 2 + 1/2 ln(2/3)
    s = torch.tensor([[0.0, math.log(3.0)]])
    t = torch.zeros(1, 2)
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert DistillKL(1.0)(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_kd_numpy_temperature():
    s, t = RNG.normal(size=(5, 7)), RNG.normal(size=(5, 7))
    T = 4.0
    ps, pt = _softmax(s / T), _softmax(t / T)
    expected = (pt * (np.log(pt) - np.log(ps))).sum() * T * T / 5
    got = DistillKL(T)(torch.tensor(s), torch.tensor(t)).item()
    assert got == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="--kd_T"):  # the temperature is checked where --kd_T is declared
        KD_T.check(0.0)


@pytest.mark.parametrize("s_hw, t_hw, kind, kernel, params", [
    # RepDistiller's ConvReg, Cs 16 -> Ct 32; parameters counted by hand: conv weights + 32 biases + BN 2 x 32
    ((8, 8), (8, 8), nn.Conv2d, (1, 1), 16 * 32 * 1 + 32 + 64),              # same size: 1x1 conv (608)
    ((8, 8), (4, 4), nn.Conv2d, (3, 3), 16 * 32 * 9 + 32 + 64),              # twice: 3x3 stride 2 (4704)
    ((4, 4), (8, 8), nn.ConvTranspose2d, (4, 4), 16 * 32 * 16 + 32 + 64),    # half: 4x4 transposed (8288)
    ((8, 8), (6, 6), nn.Conv2d, (3, 3), 16 * 32 * 9 + 32 + 64),              # larger: (1 + 8 - 6) conv
])
def test_hint_regressor_is_convreg(s_hw, t_hw, kind, kernel, params):
    reg = Regressor((2, 16, *s_hw), (2, 32, *t_hw))
    assert type(reg.conv) is kind and tuple(reg.conv.kernel_size) == kernel
    assert sum(p.numel() for p in reg.parameters()) == params
    assert sorted(reg.state_dict()) == ["bn.bias", "bn.num_batches_tracked", "bn.running_mean", "bn.running_var",
                                        "bn.weight", "conv.bias", "conv.weight"]  # RepDistiller's names
    out = reg(torch.randn(2, 16, *s_hw))
    assert out.shape == (2, 32, *t_hw) and (out >= 0).all()  # BN then ReLU
    with pytest.raises(ValueError, match="student map of 4x4 to a teacher map of 6x6"):
        Regressor((2, 16, 4, 4), (2, 32, 6, 6))


def test_hint_regressor_shapes_and_mse():
    assert Regressor((2, 3), (2, 5))(torch.randn(2, 3)).shape == (2, 5)
    with pytest.raises(ValueError):
        Regressor((2, 3), (2, 5, 4, 4))
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 2.0])
    assert HintLoss()(a, b).item() == pytest.approx(2.0)  # (4 + 0) / 2


def test_attention_numpy():
    fs = [RNG.normal(size=(3, 4, 4, 4)), RNG.normal(size=(3, 5, 2, 2))]
    ft = [RNG.normal(size=(3, 6, 4, 4)), RNG.normal(size=(3, 2, 2, 2))]

    def at(f):
        a = (f ** 2).mean(1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    expected = sum(((at(s) - at(t)) ** 2).mean() for s, t in zip(fs, ft))
    got = AttentionLoss()([torch.tensor(x) for x in fs], [torch.tensor(x) for x in ft]).item()
    assert got == pytest.approx(expected, rel=1e-10)


def test_attention_pools_larger_map():
    s = torch.ones(1, 1, 4, 4)
    t = torch.ones(1, 1, 2, 2)
    assert AttentionLoss()([s], [t]).item() == pytest.approx(0.0, abs=1e-12)


def test_similarity_numpy():
    s, t = RNG.normal(size=(4, 3, 2, 2)), RNG.normal(size=(4, 5))

    def g(f):
        f = f.reshape(len(f), -1)
        m = f @ f.T
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    expected = ((g(s) - g(t)) ** 2).sum() / 16
    assert SimilarityLoss()(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected, rel=1e-10)


def _smooth_l1(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d ** 2, d - 0.5).mean()


def test_rkd_numpy():
    s, t = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 4))

    def dist(e):
        d = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
        return d / d[d > 0].mean()

    def angle(e):
        n = len(e)
        out = np.zeros((n, n, n))
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    u, v = e[i] - e[j], e[k] - e[j]
                    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                    if nu > 0 and nv > 0:
                        out[j, i, k] = u @ v / (nu * nv)
        return out

    expected = 25 * _smooth_l1(dist(s), dist(t)) + 50 * _smooth_l1(angle(s), angle(t))
    got = RKDLoss()(torch.tensor(s), torch.tensor(t)).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_pkt_hand_value_and_numpy():
    # identical features -> 0
    x = torch.randn(4, 6)
    assert PKTLoss()(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    s, t = RNG.normal(size=(4, 6)), RNG.normal(size=(4, 6))

    def probs(f):
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        k = (f @ f.T + 1) / 2
        return k / k.sum(1, keepdims=True)

    ps, pt = probs(s), probs(t)
    expected = np.mean(pt * np.log(pt / ps))
    assert PKTLoss(eps=0.0)(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(expected, rel=1e-9)


def test_nce_loss_hand_value():
    # one sample, K = 1 negative, n_data = 2 -> noise m*Pn = 1/2. scores (1/2, 1/2):
    # log D1 = ln(1/2 / 1) , log D0 = ln(1/2 / 1) -> loss = 2 ln 2
    scores = torch.tensor([[0.5, 0.5]], dtype=torch.double)
    assert nce_loss(scores, 2, eps=0.0).item() == pytest.approx(2 * math.log(2.0), rel=1e-9)


def test_crd_numpy_and_memory_update():
    torch.manual_seed(0)
    n_data, k, d = 10, 3, 4
    crd = CRDLoss(5, 6, n_data, feat_dim=d, nce_k=k, nce_t=0.07, nce_m=0.5).double()
    fs, ft = torch.randn(2, 5, dtype=torch.double), torch.randn(2, 6, dtype=torch.double)
    index = torch.tensor([2, 7])
    cidx = torch.tensor([[2, 0, 1, 3], [7, 4, 5, 9]])
    mem_s0, mem_t0 = crd.memory.mem_s.numpy().copy(), crd.memory.mem_t.numpy().copy()
    ws, bs = crd.embed_s.linear.weight.detach().numpy(), crd.embed_s.linear.bias.detach().numpy()
    wt, bt = crd.embed_t.linear.weight.detach().numpy(), crd.embed_t.linear.bias.detach().numpy()
    got = crd(fs, ft, index, contrast_idx=cidx).item()

    def emb(x, w, b):
        y = x @ w.T + b
        return y / np.linalg.norm(y, axis=1, keepdims=True)

    vs, vt = emb(fs.numpy(), ws, bs), emb(ft.numpy(), wt, bt)
    idx = cidx.numpy()
    out_s = np.exp(np.einsum("bkd,bd->bk", mem_t0[idx], vs) / 0.07)
    out_t = np.exp(np.einsum("bkd,bd->bk", mem_s0[idx], vt) / 0.07)
    out_s, out_t = out_s / (out_s.mean() * n_data), out_t / (out_t.mean() * n_data)

    def nce(x):
        noise = k / n_data
        return -(np.log(x[:, 0] / (x[:, 0] + noise + 1e-7)).sum()
                 + np.log(noise / (x[:, 1:] + noise + 1e-7)).sum()) / len(x)

    assert got == pytest.approx(nce(out_s) + nce(out_t), rel=1e-9)
    new = 0.5 * mem_s0[2] + 0.5 * vs[0]
    np.testing.assert_allclose(crd.memory.mem_s[2].numpy(), new / np.linalg.norm(new), rtol=1e-9)
    np.testing.assert_allclose(crd.memory.mem_s[0].numpy(), mem_s0[0])  # untouched row


def test_crd_uniform_negatives():
    crd = CRDLoss(5, 6, 50, nce_k=8)
    loss = crd(torch.randn(4, 5), torch.randn(4, 6), torch.arange(4))
    assert torch.isfinite(loss)


def test_dkd_numpy():
    s, t = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 5))
    y = np.array([0, 3, 1, 4])
    T, a, b = 4.0, 1.0, 8.0
    ps, pt = _softmax(s / T), _softmax(t / T)
    tckd = nckd = 0.0
    for i in range(4):
        bs = np.array([ps[i, y[i]], 1 - ps[i, y[i]]])
        bt = np.array([pt[i, y[i]], 1 - pt[i, y[i]]])
        tckd += (bt * np.log(bt / bs)).sum()
        keep = np.arange(5) != y[i]
        qs, qt = ps[i, keep] / ps[i, keep].sum(), pt[i, keep] / pt[i, keep].sum()
        nckd += (qt * np.log(qt / qs)).sum()
    expected = (a * tckd + b * nckd) * T * T / 4
    got = dkd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), a, b, T).item()
    assert got == pytest.approx(expected, rel=1e-6)
    loss = DKDLoss(a, b, T, warmup=20)
    half = loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), epoch=10).item()
    assert half == pytest.approx(0.5 * expected, rel=1e-6)
    assert loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), epoch=40).item() == pytest.approx(expected, rel=1e-6)
