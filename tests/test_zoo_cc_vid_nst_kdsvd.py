"""CC, VID, NST and KD-SVD against their reference formulas (HobbitLong/RepDistiller ``distiller_zoo/``): on fixed
small inputs and fixed module weights, the loss and its gradient on the student's features equal values derived
here in numpy (KD-SVD: the reference's torch ops, ``torch.svd`` included, transcribed in float64); the reference
initialisations; and one epoch of each through ``train_student.py`` on digits."""
import logging
import os
import re

import numpy as np
import pytest
import torch
import yaml

import train_student
from distiller import get_distiller
from helpers import TinyNet
from models import model_dict
from topkd_io import load_checkpoint, save_torch

B = 3


def _build(name, widths_t=(6, 6, 12), **kw):
    """The method on a TinyNet student (widths 4, 4, 8) and teacher, probed at 8x8 images."""
    torch.manual_seed(0)
    return get_distiller(name)(TinyNet((4, 4, 8)), TinyNet(widths_t), image_size=8, **kw)


def _randn(seed, *shape, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _maps():
    """Student stage maps (4 channels at 4x4: pooled to the teacher's 2x2; 8 at 2x2) and teacher maps (6 at 2x2;
    12 at 4x4: pooled to the student's 2x2), float64, with the stem and pooled entries around them."""
    s = [_randn(1, B, 4, 4, 4), _randn(2, B, 8, 2, 2)]
    t = [_randn(3, B, 6, 2, 2).relu(), _randn(4, B, 12, 4, 4).relu()]
    return s, t


def _pool2(x):
    """numpy 2x2 average pooling of ``[B, C, H, W]``."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def _unpool2(g):
    """The gradient of `_pool2`: each input gets a quarter of its window's gradient."""
    return np.repeat(np.repeat(g, 2, axis=2), 2, axis=3) / 4


def _grad_of(method, maps_s, maps_t, pooled_s=None, pooled_t=None):
    """(loss, [gradient on each student map]) of ``method.method_loss`` on the stage maps."""
    maps_s = [m.clone().requires_grad_(True) for m in maps_s]
    pooled_s = _randn(9, B, 8) if pooled_s is None else pooled_s
    pooled_t = _randn(10, B, 12) if pooled_t is None else pooled_t
    feats_s = [_randn(11, B, 4, 8, 8), *maps_s, pooled_s]
    feats_t = [_randn(12, B, 6, 8, 8), *maps_t, pooled_t]
    loss = method.method_loss(feats_s, None, feats_t, None, None)
    loss.backward()
    return loss.item(), [m.grad.numpy() for m in maps_s]


def test_cc_golden():
    """RepDistiller CC.py: ``d = |embed_s(f_s) - embed_t(f_t)|``, ``mean_i <d[i], d[i+1]>``; weight 0.02."""
    d = _build("cc", feat_dim=5).double()
    assert d.beta == 0.02 and d.alpha == 0.0 and d.term == "loss_cc"
    assert d.embed_s.weight.shape == (5, 8) and d.embed_t.weight.shape == (5, 12)  # LinearEmbed(C, feat_dim)
    with torch.no_grad():
        for i, lin in enumerate((d.embed_s, d.embed_t)):
            lin.weight.copy_(_randn(20 + i, *lin.weight.shape, scale=0.5))
            lin.bias.copy_(_randn(30 + i, *lin.bias.shape, scale=0.5))
    f_s = _randn(5, B + 2, 8).requires_grad_(True)
    f_t = _randn(6, B + 2, 12)
    loss = d.method_loss([f_s], None, [f_t], None, None)
    loss.backward()

    w_s, b_s = d.embed_s.weight.detach().numpy(), d.embed_s.bias.detach().numpy()
    w_t, b_t = d.embed_t.weight.detach().numpy(), d.embed_t.bias.detach().numpy()
    diff = (f_s.detach().numpy() @ w_s.T + b_s) - (f_t.numpy() @ w_t.T + b_t)
    delta = np.abs(diff)
    n = delta.shape[0]
    expected = np.mean([delta[i] @ delta[i + 1] for i in range(n - 1)])
    g_e = np.zeros_like(delta)  # d loss / d e_s[i] = sign(diff[i]) * (delta[i-1] + delta[i+1]) / (n - 1)
    for i in range(n - 1):
        g_e[i] += np.sign(diff[i]) * delta[i + 1] / (n - 1)
        g_e[i + 1] += np.sign(diff[i + 1]) * delta[i] / (n - 1)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(f_s.grad.numpy(), g_e @ w_s, rtol=1e-10, atol=1e-14)
    assert d.embed_t.weight.grad is not None and d.embed_t.weight.grad.abs().sum() > 0  # both embeddings train


def test_nst_golden():
    """RepDistiller NST.py: per stage, the larger map pooled, channels L2-normalised over positions,
    ``mean K_tt + mean K_ss - 2 mean K_st`` with ``K(a, b) = <a, b>^2``; stages summed; weight 50."""
    d = _build("nst")
    assert d.beta == 50.0 and d.alpha == 0.0
    maps_s, maps_t = _maps()
    loss, grads = _grad_of(d, maps_s, maps_t)

    expected, expected_grads = 0.0, []
    for k, (fs, ft) in enumerate(zip(maps_s, maps_t)):
        fs, ft = fs.numpy(), ft.numpy()
        pooled_s = fs.shape[2] > ft.shape[2]
        fs, ft = (_pool2(fs), ft) if pooled_s else (fs, _pool2(ft))
        x = fs.reshape(B, fs.shape[1], -1)
        norm = np.linalg.norm(x, axis=2, keepdims=True)
        a = x / norm
        b = ft.reshape(B, ft.shape[1], -1)
        b = b / np.maximum(np.linalg.norm(b, axis=2, keepdims=True), 1e-12)  # F.normalize: an all-zero channel -> 0
        g_ss = np.einsum("bin,bjn->bij", a, a)
        g_ts = np.einsum("bin,bjn->bij", b, a)
        g_tt = np.einsum("bin,bjn->bij", b, b)
        expected += (g_tt ** 2).mean() + (g_ss ** 2).mean() - 2 * (g_ts ** 2).mean()
        # d/da of mean(G_ss^2) = 4 G_ss a / (B C_s^2); of mean(G_ts^2) = 2 G_ts^T b / (B C_t C_s)
        c_s, c_t = a.shape[1], b.shape[1]
        g_a = 4 * np.einsum("bij,bjn->bin", g_ss, a) / (B * c_s * c_s) \
            - 2 * 2 * np.einsum("bij,bin->bjn", g_ts, b) / (B * c_t * c_s)
        g_x = (g_a - a * (a * g_a).sum(axis=2, keepdims=True)) / norm  # through x / |x|
        g_x = g_x.reshape(fs.shape)
        expected_grads.append(_unpool2(g_x) if pooled_s else g_x)
    assert loss == pytest.approx(expected, rel=1e-10)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_vid_init_and_golden():
    """RepDistiller VID.py: per stage a 1x1 regressor C_s -> C_t -> C_t -> C_t (no bias, ReLUs), variance
    ``log(1 + exp(log_scale)) + eps`` with ``log_scale`` initialised to ``log(exp(5 - eps) - 1)``; the loss
    ``mean(0.5 * ((mu - f_t)^2 / var + log var))`` after pooling the larger map; stages summed; weight 1."""
    eps = 1e-5
    d = _build("vid")
    assert d.beta == 1.0 and d.alpha == 0.0 and len(d.vid) == 2
    for layer, (c_s, c_t) in zip(d.vid, [(4, 6), (8, 12)]):
        convs = [m for m in layer.regressor if isinstance(m, torch.nn.Conv2d)]
        assert [tuple(c.weight.shape) for c in convs] == [(c_t, c_s, 1, 1), (c_t, c_t, 1, 1), (c_t, c_t, 1, 1)]
        assert all(c.bias is None for c in convs) and len(layer.regressor) == 5
        np.testing.assert_allclose(layer.log_scale.detach().numpy(), np.full(c_t, np.log(np.exp(5.0 - eps) - 1.0)),
                                   rtol=1e-6)
    assert {id(p) for p in d.vid.parameters()} <= {id(p) for p in d.learnable_parameters()}

    d = d.double()
    with torch.no_grad():  # fixed weights, and a variance that differs by channel
        for i, p in enumerate(d.vid.parameters()):
            p.copy_(_randn(40 + i, *p.shape, scale=0.7) + (2.0 if p.dim() == 1 else 0.0))
    maps_s, maps_t = _maps()
    loss, grads = _grad_of(d, maps_s, maps_t)

    expected, expected_grads = 0.0, []
    for layer, fs, ft in zip(d.vid, maps_s, maps_t):
        fs, ft = fs.numpy(), ft.numpy()
        pooled_s = fs.shape[2] > ft.shape[2]
        fs, ft = (_pool2(fs), ft) if pooled_s else (fs, _pool2(ft))
        w1, w2, w3 = (layer.regressor[i].weight.detach().numpy()[:, :, 0, 0] for i in (0, 2, 4))
        ls = layer.log_scale.detach().numpy()
        h1 = np.einsum("oc,bchw->bohw", w1, fs)
        h2 = np.einsum("oc,bchw->bohw", w2, np.maximum(h1, 0))
        mu = np.einsum("oc,bchw->bohw", w3, np.maximum(h2, 0))
        var = (np.log(1.0 + np.exp(ls)) + eps)[None, :, None, None]
        expected += np.mean(0.5 * ((mu - ft) ** 2 / var + np.log(var)))
        g_mu = (mu - ft) / var / mu.size
        g_h2 = np.einsum("oc,bohw->bchw", w3, g_mu) * (h2 > 0)
        g_h1 = np.einsum("oc,bohw->bchw", w2, g_h2) * (h1 > 0)
        g_x = np.einsum("oc,bohw->bchw", w1, g_h1)
        expected_grads.append(_unpool2(g_x) if pooled_s else g_x)
    assert loss == pytest.approx(expected, rel=1e-10)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def _kdsvd_reference(g_s, g_t, k=1):
    """RepDistiller KDSVD.forward, transcribed with the same torch calls (``torch.svd`` of ``[B, HW, C]``)."""
    def finite(x):
        return torch.where(torch.isfinite(x), x, torch.zeros_like(x))

    def svd(feat, n):
        size = feat.shape
        x = feat.view(-1, size[1], size[2] * size[2]).transpose(-2, -1)
        u, s, v = torch.svd(x)
        s, v = finite(s), finite(v)
        return torch.nn.functional.normalize(s[:, :n], dim=1), torch.nn.functional.normalize(v[:, :, :n], dim=1)

    losses, v_sb, v_tb = [], None, None
    for i, (f_s, f_t) in enumerate(zip(g_s, g_t)):
        s_t, v_t = svd(f_t, k)
        _, v_s = svd(f_s, k + 3)
        cosine = torch.matmul(v_s.transpose(-2, -1), v_t)
        max_abs, _ = torch.max(torch.abs(cosine), 1, keepdim=True)
        mask = torch.where(torch.eq(max_abs, torch.abs(cosine)), torch.sign(cosine), torch.zeros_like(cosine))
        v_s = torch.matmul(v_s, mask)
        s_t = s_t.unsqueeze(1)
        v_t, v_s = v_t * s_t, v_s * s_t
        if i > 0:
            s_rbf = torch.exp(-(v_s.unsqueeze(2) - v_sb.unsqueeze(1)).pow(2) / 8)
            t_rbf = torch.exp(-(v_t.unsqueeze(2) - v_tb.unsqueeze(1)).pow(2) / 8)
            l2 = (s_rbf - t_rbf.detach()).pow(2)
            losses.append(finite(l2).sum())
        v_tb, v_sb = v_t, v_s
    return sum(l / g_s[0].shape[0] for l in losses)


def test_kdsvd_golden_and_refusal():
    """RepDistiller KDSVD.py (k 1): value and student gradient equal the reference's own torch ops; weight 1
    (mdistiller's CFG.KDSVD); unequal stage widths are refused in one line."""
    d = _build("kdsvd", widths_t=(4, 4, 8))
    assert d.beta == 1.0 and d.alpha == 0.0
    maps_s = [_randn(1, B, 4, 4, 4), _randn(2, B, 8, 2, 2)]
    maps_t = [_randn(3, B, 4, 4, 4).relu(), _randn(4, B, 8, 2, 2).relu()]
    loss, grads = _grad_of(d, maps_s, maps_t, pooled_t=_randn(10, B, 8))

    ref_s = [m.clone().requires_grad_(True) for m in maps_s]
    expected = _kdsvd_reference(ref_s, maps_t)
    expected.backward()
    assert expected.item() > 0 and loss == pytest.approx(expected.item(), rel=1e-10)
    for got, want in zip(grads, ref_s):
        assert np.abs(got).sum() > 0
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-7, atol=1e-12)

    # half-precision maps (--amp) are decomposed in float32
    half_s, half_t = ([None, *(m.bfloat16() for m in maps), None] for maps in (maps_s, maps_t))
    half = d.method_loss(half_s, None, half_t, None, None)
    assert half.item() == pytest.approx(loss, rel=0.1)

    from topkd_io import TopKDError
    with pytest.raises(TopKDError, match="stage widths differ"):
        _build("kdsvd")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """An untrained resnet8 checkpoint for digits (the plumbing is under test, not accuracy)."""
    path = tmp_path_factory.mktemp("t") / "resnet8_best.pth"
    torch.manual_seed(0)
    save_torch({"model": model_dict["resnet8"](num_classes=10).state_dict(), "arch": "resnet8", "num_classes": 10},
               str(path))
    return str(path)


# spelling on the command line -> (registered name, default beta, extra flags, a key of its trained parts)
RUNS = {"correlation": ("cc", 0.02, ["--feat_dim", "16"], "embed_t.weight"),
        "vid": ("vid", 1.0, [], "vid.2.log_scale"),
        "nst": ("nst", 50.0, [], None),
        "kdsvd": ("kdsvd", 1.0, [], None)}


@pytest.mark.parametrize("spelling", sorted(RUNS))
def test_one_epoch_on_digits(teacher, tmp_path, spelling, caplog):
    """One epoch (one batch of all 1437 training images) through train_student.py: the method's defaults name
    the run, its term is finite, its trained parts are checkpointed."""
    name, beta, extra, part = RUNS[spelling]
    argv = ["--dataset", "digits", "--image_size", "8", "--num_workers", "0", "--device", "cpu", "--print_freq",
            "1000", "--lr_decay_epochs", "100", "--epochs", "1", "--model_s", "resnet8", "--path_t", teacher,
            "--batch_size", "2048", "--topo_eval_batches", "0", "--save_dir", str(tmp_path), "--distill", spelling,
            *extra]
    with caplog.at_level(logging.INFO):
        summary = train_student.main(argv)
    logged = re.search(rf"train loss \S+ \([^)]*loss_{name} ([^ )]+)", caplog.text)
    assert logged and np.isfinite(float(logged.group(1))), caplog.text[-2000:]
    run_dir = os.path.dirname(summary["last_checkpoint"])
    assert os.path.basename(run_dir).startswith(f"S-resnet8_T-resnet8_digits_{name}_r-1.0_a-0.0_b-{beta}_")
    cfg = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    assert cfg["distill"] == name and cfg["beta"] == beta
    ckpt = load_checkpoint(summary["last_checkpoint"])
    assert ckpt["epoch"] == 1 and np.isfinite(summary["last_acc"])
    if part is not None:
        assert part in ckpt["distiller"]
    if name == "cc":
        assert cfg["feat_dim"] == 16 and ckpt["distiller"]["embed_s.weight"].shape == (16, 64)
