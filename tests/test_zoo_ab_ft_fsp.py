"""AB, FT and FSP against RepDistiller's formulas (distiller_zoo/AB.py, FT.py, FSP.py; models/util.py), their
pre-training stage (helper/pretrain.py) through train_student.py, and kill -9 inside that stage.

The expected numbers come from the reference formulas written out here in numpy or plain torch, never from
the project's code."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import train_student
import train_teacher
from distiller import get_distiller
from distiller.zoo.ab import ab_loss
from distiller.zoo.fsp import fsp_matrices
from distiller.zoo.ft import factor_loss
from helpers import TinyNet, kill9_after, weights_digest
from topkd_io import TopKDError, load_checkpoint


def _maps(seed, *shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


# ----------------------------------------------------------------------------- golden values
def test_ab_loss_and_gradient_equal_the_reference_formula():
    s = _maps(0, (2, 3, 4, 4), (2, 2, 2, 2))
    t = _maps(1, (2, 3, 4, 4), (2, 2, 2, 2))
    for x in s:
        x.requires_grad_(True)
    loss = ab_loss(s, t, margin=1.0)
    loss.backward()
    # AB.py: w_i = 2^(i-n+1); per stage sum of (s+m)^2 [s>-m, t<=0] + (s-m)^2 [s<=m, t>0], / B, / 1000 * 3
    expected, n = 0.0, len(s)
    for i, (a, b) in enumerate(zip(s, t)):
        a, b = a.detach().numpy(), b.numpy()
        neg, pos = (a > -1) & (b <= 0), (a <= 1) & (b > 0)
        w = 2.0 ** (i - n + 1) * 3 / 1000 / a.shape[0]
        expected += w * ((a + 1) ** 2 * neg + (a - 1) ** 2 * pos).sum()
        grad = w * (2 * (a + 1) * neg + 2 * (a - 1) * pos)  # d/ds of the squared hinges
        np.testing.assert_allclose(s[i].grad.numpy(), grad, rtol=1e-12, atol=1e-15)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    print(f"[golden] {loss.item():.10g}")


def test_ab_connector_and_margin_follow_the_reference():
    torch.manual_seed(0)
    ab = get_distiller("ab")(TinyNet((4, 4, 8)), TinyNet((4, 6, 12)), image_size=8)
    assert ab.margin == 1.0 and ab.init_epochs == 30 and ab.term is None
    # stage 1: 4 vs 6 channels at 8x8 -> ConvReg(use_relu=False): a 1x1 conv and BatchNorm, no ReLU
    reg = ab.connector.maps[0]
    assert reg.conv.kernel_size == (1, 1) and (reg.conv.in_channels, reg.conv.out_channels) == (4, 6)
    out = ab.connector([torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)])
    assert (out[0] < 0).any()  # no ReLU after the BatchNorm
    twin = get_distiller("ab")(TinyNet((4, 4, 8)), TinyNet((4, 4, 8)), image_size=8)
    assert all(isinstance(m, nn.Identity) for m in twin.connector.maps)  # equal shapes: no connector
    # the stage trains the connectors and the student's feature layers, never its classifier
    ids = {id(p) for p in ab.pretrain_parameters()}
    assert ids == {id(p) for p in ab.connector.parameters()} | {
        id(p) for n, p in ab.student.named_parameters() if not n.startswith("fc.")}


def _fsp_reference(maps):
    """FSP.py compute_fsp, transcribed: bot [B,1,C1,HW] * top [B,C2,1,HW], mean over HW."""
    out = []
    for bot, top in zip(maps[:-1], maps[1:]):
        if bot.shape[2] > top.shape[2]:
            bot = F.adaptive_avg_pool2d(bot, (top.shape[2], top.shape[2]))
        elif bot.shape[2] < top.shape[2]:
            top = F.adaptive_avg_pool2d(top, (bot.shape[2], bot.shape[2]))
        b, t = bot.unsqueeze(1), top.unsqueeze(2)
        out.append((b.reshape(*b.shape[:3], -1) * t.reshape(*t.shape[:3], -1)).mean(-1))
    return out


def test_fsp_loss_and_gradient_equal_the_reference_formula():
    shapes = ((2, 3, 4, 4), (2, 3, 4, 4), (2, 5, 2, 2))
    s, t = _maps(2, *shapes), _maps(3, *shapes)
    ref_s = [x.clone().requires_grad_(True) for x in s]
    for x in s:
        x.requires_grad_(True)
    loss = sum((a - b).pow(2).mean() for a, b in zip(fsp_matrices(s), fsp_matrices(t)))
    ref = sum((a - b).pow(2).mean() for a, b in zip(_fsp_reference(ref_s), _fsp_reference(t)))
    loss.backward()
    ref.backward()
    # numpy, the second pair: the 4x4 map pooled to 2x2 (means of 2x2 blocks), G[j, i] = mean_p top_j * bot_i
    a = s[1].detach().numpy().reshape(2, 3, 2, 2, 2, 2).mean((3, 5))
    g = np.einsum("bjp,bip->bji", s[2].detach().numpy().reshape(2, 5, 4), a.reshape(2, 3, 4)) / 4
    np.testing.assert_allclose(fsp_matrices(s)[1].detach().numpy().transpose(0, 2, 1), g, rtol=1e-12)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-12)
    print(f"[golden] {loss.item():.10g}")
    for x, r in zip(s, ref_s):
        torch.testing.assert_close(x.grad, r.grad, rtol=1e-12, atol=1e-15)


def test_fsp_refuses_unequal_channels_and_trains_the_student_body():
    with pytest.raises(TopKDError, match="equal channels"):
        get_distiller("fsp")(TinyNet((4, 4, 8)), TinyNet((6, 6, 12)), image_size=8)
    fsp = get_distiller("fsp")(TinyNet((4, 4, 8)), TinyNet((4, 4, 8)), image_size=8)
    assert {id(p) for p in fsp.pretrain_parameters()} == {
        id(p) for n, p in fsp.student.named_parameters() if not n.startswith("fc.")}


def test_ft_loss_and_gradient_equal_the_reference_formula():
    s, t = _maps(4, (2, 3, 4, 4), (2, 5, 2, 2))
    s.requires_grad_(True)
    loss = factor_loss(s, t)
    loss.backward()
    # FT.py (p1 2, p2 1): the 4x4 student factor pooled to 2x2; phi = L2-normalised channel mean of squares
    a = s.detach().numpy().reshape(2, 3, 2, 2, 2, 2).mean((3, 5))
    phi = [(x ** 2).mean(1).reshape(2, -1) for x in (a, t.numpy())]
    phi = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in phi]
    assert loss.item() == pytest.approx(np.abs(phi[0] - phi[1]).mean(), rel=1e-12)
    print(f"[golden] {loss.item():.10g}")
    ref_s = s.detach().clone().requires_grad_(True)
    f_s = F.adaptive_avg_pool2d(ref_s, (2, 2))
    ref = (F.normalize(f_s.pow(2).mean(1).view(2, -1)) - F.normalize(t.pow(2).mean(1).view(2, -1))).abs().mean()
    ref.backward()
    torch.testing.assert_close(s.grad, ref_s.grad, rtol=1e-12, atol=1e-15)


def test_ft_paraphraser_translator_and_factor_rate_follow_the_reference():
    torch.manual_seed(0)
    ft = get_distiller("ft")(TinyNet((4, 4, 8)), TinyNet((6, 6, 12)), image_size=8)
    assert (ft.beta, ft.init_epochs, ft.init_lr, ft.pretrain_lr(0.05)) == (200.0, 30, 0.01, 0.01)
    # models/util.py: Paraphraser(t_shape, k=0.5, use_bn=False), Translator(s_shape, t_shape, k=0.5, use_bn=True)
    convs = lambda seq: [(m.in_channels, m.out_channels) for m in seq if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs(ft.paraphraser.encoder) == [(12, 12), (12, 6), (6, 6)]
    assert convs(ft.paraphraser.decoder) == [(6, 6), (6, 12), (12, 12)]
    assert all(isinstance(m, nn.ConvTranspose2d) for m in ft.paraphraser.decoder if hasattr(m, "out_channels"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ft.paraphraser.modules())
    assert convs(ft.translator) == [(8, 8), (8, 6), (6, 6)]
    assert sorted(k for k in ft.translator.state_dict() if k.endswith("weight")) == [
        f"{i}.weight" for i in (0, 1, 3, 4, 6, 7)]  # RepDistiller's encoder indices: conv, BN, LeakyReLU
    assert ft.paraphraser.encoder[2].negative_slope == 0.1
    # the stage trains the paraphraser alone (reconstruction MSE); the main stage the translator, not the paraphraser
    assert {id(p) for p in ft.pretrain_parameters()} == {id(p) for p in ft.paraphraser.parameters()}
    learnable = {id(p) for p in ft.learnable_parameters()}
    assert not learnable & {id(p) for p in ft.paraphraser.parameters()}
    assert {id(p) for p in ft.translator.parameters()} <= learnable
    f_t = torch.randn(2, 12, 4, 4)
    rec = ft.paraphraser.decoder(ft.paraphraser.encoder(f_t))
    assert ft.pretrain_loss(None, [None, f_t, None]).item() == pytest.approx(((rec - f_t) ** 2).mean().item())


def test_pretraining_epochs_reach_the_pretraining_loss_only():
    torch.manual_seed(0)
    fsp = get_distiller("fsp")(TinyNet((4, 4, 8)), TinyNet((4, 4, 8)), image_size=8)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    fsp.train()
    fsp.set_epoch(-1)
    _, losses = fsp(x, y)
    assert list(losses) == ["loss_init"]
    fsp.set_epoch(1)
    _, losses = fsp(x, y)
    assert list(losses) == ["loss_ce"]


def test_ab_pretrains_on_both_networks_maps_before_their_last_relu():
    """RepDistiller's pre-training passes ``preact=True`` to both networks for abound: the hinge then sees the
    negative part of the teacher's maps (after a ReLU every ``t <= 0`` term would be ``t == 0``)."""
    torch.manual_seed(0)
    ab = get_distiller("ab")(TinyNet((4, 4, 8)), TinyNet((4, 6, 12)), image_size=8)
    seen = []
    ab.pretrain_loss = lambda feats_s, feats_t: (seen.append((feats_s, feats_t)), feats_s[1].sum())[1]
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    ab.train()
    ab.set_epoch(-1)
    ab(x, y)
    feats_s, feats_t = seen[0]
    want_t, _ = ab.teacher(x, is_feat=True, preact=True)
    want_s, _ = ab.student(x, is_feat=True, preact=True)
    assert (feats_t[1] < 0).any() and (feats_s[1] < 0).any()
    assert torch.equal(feats_t[1], want_t[1]) and torch.allclose(feats_s[1], want_s[1])


# ----------------------------------------------------------------------------- through train_student.py
DATA = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", "--num_workers", "0", "--device", "cpu",
        "--print_freq", "1000", "--lr_decay_epochs", "100", "--deterministic", "--threads", "1"]


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    summary = train_teacher.main(DATA + ["--model", "resnet8", "--epochs", "1", "--seed", "1",
                                         "--save_dir", str(tmp_path_factory.mktemp("teacher"))])
    return summary["best_checkpoint"]


def _student(teacher, folder, method, *extra):
    return DATA + ["--path_t", teacher, "--model_s", "resnet8", "--distill", method, "--epochs", "1",
                   "--init_epochs", "1", "--seed", "3", "--run_dir", str(folder), *extra]


@pytest.mark.parametrize("method", ["ab", "ft", "fsp"])
def test_one_digits_epoch_after_one_pretraining_epoch(teacher_path, tmp_path, method, caplog):
    caplog.set_level("INFO")
    summary = train_student.main(_student(teacher_path, tmp_path / method, method))
    assert summary["epochs_run"] == 1 and summary["last_acc"] > 0
    assert "pre-training epoch 1/1" in caplog.text
    cfg = load_checkpoint(tmp_path / method / "resnet8_last.pth")["config"]
    assert cfg["init_epochs"] == 1 and cfg["distill"] == method
    assert "init_epochs" in cfg["identity"]["options"]


def test_init_epochs_is_an_option_of_the_pretrained_methods_only(teacher_path, tmp_path, run_stage):
    code, _, err = run_stage(train_student.main, _student(teacher_path, tmp_path / "kd", "kd") + ["--plan"])
    assert code == 2 and "--init_epochs is not an option of --distill kd" in err


@pytest.mark.slow
def test_kill9_in_pretraining_then_resume_equals_a_straight_run(teacher_path, tmp_path, repo_root):
    """AB with 2 pre-training epochs and 1 main epoch, killed after the first pre-training checkpoint, resumed:
    the student's weights equal an uninterrupted run's, bit for bit."""
    part, straight = tmp_path / "part", tmp_path / "straight"
    argv = _student(teacher_path, part, "ab", "--init_epochs", "2")
    kill9_after("train_student.py", argv, repo_root, lambda text: "pre-training epoch 1/2" in text)  # logged after
    # its checkpoint is on disk
    ckpt = load_checkpoint(part / "resnet8_last.pth")
    assert ckpt["epoch"] == 0 and ckpt["init"]["epoch"] == 1
    resumed = train_student.main(argv + ["--resume"])
    assert resumed["epochs_run"] == 1
    train_student.main(_student(teacher_path, straight, "ab", "--init_epochs", "2"))
    assert weights_digest(part / "resnet8_last.pth") == weights_digest(straight / "resnet8_last.pth")
    states = [load_checkpoint(p / "resnet8_last.pth")["distiller"] for p in (part, straight)]
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
