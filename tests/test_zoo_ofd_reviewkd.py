"""OFD and ReviewKD against their reference formulas (mdistiller ``distillers/OFD.py`` and ``distillers/ReviewKD.py``),
written out here with plain torch / scipy ops; their initialisation; a one-epoch digits run of each."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import norm

import train_student
import train_teacher
from distiller.zoo.ofd import OFD, connector
from distiller.zoo.reviewkd import ABF, ReviewKD
from helpers import TinyNet
from models import model_dict
from topkd_io import TopKDError


def bn_train(x, bn):
    """BatchNorm in training mode, by hand: batch mean and biased variance over (B, H, W)."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)


def reference_margin(bn):
    """mdistiller ``OFD.init_ofd_modules``: one margin per channel from the BN's weight (std) and bias (mean)."""
    out = []
    for s, m in zip(bn.weight.tolist(), bn.bias.tolist()):
        s = abs(s)
        if norm.cdf(-m / s) > 0.001:
            out.append(-s * math.exp(-((m / s) ** 2) / 2) / math.sqrt(2 * math.pi) / norm.cdf(-m / s) + m)
        else:
            out.append(-3 * s)
    return torch.tensor(out, dtype=torch.float32).view(1, -1, 1, 1)


def reference_feat_loss(source, target, margin):
    """mdistiller ``feat_loss``: the three masked squared terms, mean over the batch, summed."""
    loss = ((source - margin) ** 2 * ((source > margin) & (target <= margin)).float()
            + (source - target) ** 2 * ((source > target) & (target > margin) & (target <= 0)).float()
            + (source - target) ** 2 * (target > 0).float())
    return torch.abs(loss).mean(dim=0).sum()


def teacher_with_fixed_bns():
    torch.manual_seed(0)
    teacher = TinyNet((6, 6, 12))
    g = torch.Generator().manual_seed(7)
    for stage in teacher.stages:
        bn = stage[1]
        with torch.no_grad():
            bn.weight.copy_(torch.randn(bn.num_features, generator=g) * 1.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g))
            bn.bias[0], bn.weight[0] = 4.0, 1.0  # P(x < 0) = 3e-5 <= 0.001: the -3 * std branch
    return teacher


def test_ofd_margin_and_connector_init_match_the_reference():
    teacher = teacher_with_fixed_bns()
    d = OFD(TinyNet((4, 4, 8)), teacher)
    for i, stage in enumerate(teacher.stages):
        torch.testing.assert_close(getattr(d, f"margin{i}"), reference_margin(stage[1]))
    assert getattr(d, "margin0")[0, 0, 0, 0].item() == pytest.approx(-3.0)
    assert "margin0" not in d.state_dict()  # derived from the teacher, not checkpointed
    torch.manual_seed(0)
    conn = connector(64, 256)  # reference: conv weights from N(0, 2 / (k * k * out)), BN (1, 0)
    assert conn[0].weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.03)
    assert torch.equal(conn[1].weight, torch.ones(256)) and torch.equal(conn[1].bias, torch.zeros(256))


def test_ofd_golden_value_and_student_gradient():
    teacher = teacher_with_fixed_bns()
    d = OFD(TinyNet((4, 4, 8)), teacher).train()
    g = torch.Generator().manual_seed(3)
    for conn in d.connectors:
        with torch.no_grad():
            conn[0].weight.copy_(torch.randn(conn[0].weight.shape, generator=g) * 0.5)
    B = 4
    s1, s2 = torch.randn(B, 4, 8, 8, generator=g), torch.randn(B, 8, 4, 4, generator=g)
    t1, t2 = torch.randn(B, 6, 8, 8, generator=g), torch.randn(B, 12, 8, 8, generator=g)  # t2 pooled to 4x4
    feats_s = [torch.zeros(B, 4, 8, 8), s1.clone().requires_grad_(), s2.clone().requires_grad_(), torch.zeros(B, 8)]
    feats_t = [torch.zeros(B, 6, 8, 8), t1, t2, torch.zeros(B, 12)]
    ours = d.method_loss(feats_s, None, feats_t, None, None)
    ours.backward()

    hand_s = [s1.clone().requires_grad_(), s2.clone().requires_grad_()]
    expected = 0.0
    for i, (s, t, stage, conn) in enumerate(zip(hand_s, (t1, t2), teacher.stages, d.connectors)):
        w = conn[0].weight.detach()[:, :, 0, 0]  # [C_t, C_s]
        projected = bn_train(torch.einsum("oc,bchw->bohw", w, s), conn[1])
        pooled = F.adaptive_avg_pool2d(t, projected.shape[-2:])
        expected = expected + reference_feat_loss(projected, pooled, reference_margin(stage[1])) / 2 ** (2 - i - 1)
    expected.backward()
    print(f"OFD golden value {expected.item():.6f}")
    torch.testing.assert_close(ours, expected.detach())
    for ours_f, hand_f in zip(feats_s[1:3], hand_s):
        torch.testing.assert_close(ours_f.grad, hand_f.grad)


def test_ofd_refuses_a_teacher_without_a_bn_before_its_relu():
    with pytest.raises(TopKDError, match=r"teacher \(ShuffleNetV1\) has none there"):
        OFD(model_dict["resnet8"](num_classes=10), model_dict["shufflev1"](num_classes=10))


def reference_abf(abf, x, y, shape, out_shape):
    """mdistiller ``ABF.forward`` with the module's weights, BNs in training mode, by hand."""
    n, _, h, w = x.shape
    x = bn_train(F.conv2d(x, abf.conv1[0].weight), abf.conv1[1])
    if abf.att_conv is not None:
        y = F.interpolate(y, (shape, shape), mode="nearest")
        z = torch.sigmoid(F.conv2d(torch.cat([x, y], 1), abf.att_conv[0].weight, abf.att_conv[0].bias))
        x = x * z[:, 0].view(n, 1, h, w) + y * z[:, 1].view(n, 1, h, w)
    if x.shape[-1] != out_shape:
        x = F.interpolate(x, (out_shape, out_shape), mode="nearest")
    return bn_train(F.conv2d(x, abf.conv2[0].weight, padding=1), abf.conv2[1]), x


def reference_hcl(fstudent, fteacher):
    """mdistiller ``hcl_loss``."""
    loss_all = 0.0
    for fs, ft in zip(fstudent, fteacher):
        h = fs.shape[2]
        loss, cnt, tot = F.mse_loss(fs, ft, reduction="mean"), 1.0, 1.0
        for l in [4, 2, 1]:
            if l >= h:
                continue
            cnt /= 2.0
            loss = loss + F.mse_loss(F.adaptive_avg_pool2d(fs, (l, l)), F.adaptive_avg_pool2d(ft, (l, l))) * cnt
            tot += cnt
        loss_all = loss_all + loss / tot
    return loss_all


def test_reviewkd_golden_value_and_student_gradient():
    torch.manual_seed(0)
    d = ReviewKD(TinyNet((4, 4, 8)), TinyNet((6, 6, 12))).train()
    d.set_epoch(5)  # warm-up 5 / 20
    assert [(a.conv1[0].in_channels, a.conv1[0].out_channels, a.conv2[0].out_channels, a.att_conv is not None)
            for a in d.abfs] == [(4, 8, 6, True), (8, 8, 12, True), (8, 8, 12, False)]  # mid = min(512, 8)
    g = torch.Generator().manual_seed(5)
    B = 4
    s1, s2, s3 = torch.randn(B, 4, 8, 8, generator=g), torch.randn(B, 8, 4, 4, generator=g), torch.randn(B, 8, generator=g)
    # teacher maps larger than the student's: the fused maps are resized up (out_shapes 16, 8, 1)
    t1, t2, t3 = torch.randn(B, 6, 16, 16, generator=g), torch.randn(B, 12, 8, 8, generator=g), torch.randn(B, 12, generator=g)
    feats_s = [torch.zeros(B, 4, 8, 8)] + [f.clone().requires_grad_() for f in (s1, s2, s3)]
    feats_t = [torch.zeros(B, 6, 16, 16), t1, t2, t3]
    ours = d.method_loss(feats_s, None, feats_t, None, None)
    ours.backward()

    # mdistiller forward_train: x reversed, abfs reversed, shapes / out_shapes listed deepest first
    hand = [f.clone().requires_grad_() for f in (s1, s2, s3)]
    x = [hand[0], hand[1], hand[2].unsqueeze(-1).unsqueeze(-1)][::-1]
    abfs, shapes, out_shapes = list(d.abfs)[::-1], [1, 4, 8], [1, 8, 16]
    results = []
    out, res = reference_abf(abfs[0], x[0], None, None, out_shapes[0])
    results.append(out)
    for features, abf, shape, out_shape in zip(x[1:], abfs[1:], shapes[1:], out_shapes[1:]):
        out, res = reference_abf(abf, features, res, shape, out_shape)
        results.insert(0, out)
    expected = min(5 / 20, 1.0) * reference_hcl(results, [t1, t2, t3.unsqueeze(-1).unsqueeze(-1)])
    expected.backward()
    print(f"ReviewKD golden value {expected.item():.6f}")
    torch.testing.assert_close(ours, expected.detach())
    for ours_f, hand_f in zip(feats_s[1:], hand):
        torch.testing.assert_close(ours_f.grad, hand_f.grad)


def test_abf_init_matches_the_reference():
    torch.manual_seed(0)
    abf = ABF(256, 128, 64, fuse=True)
    for conv in (abf.conv1[0], abf.conv2[0]):  # kaiming_uniform_(a=1): U(-sqrt(3 / fan_in), sqrt(3 / fan_in))
        bound = math.sqrt(3 / (conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]))
        assert conv.weight.abs().max().item() <= bound
        assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_reviewkd_refuses_networks_of_different_depths():
    with pytest.raises(TopKDError, match=r"student \(CifarResNet\) has 4 and the teacher \(CifarBottleneckResNet\) 5"):
        ReviewKD(model_dict["resnet8"](num_classes=10), model_dict["ResNet50"](num_classes=10))


DATA = ["--dataset", "digits", "--image_size", "16", "--batch_size", "64", "--num_workers", "0",
        "--device", "cpu", "--print_freq", "1000", "--lr_decay_epochs", "100"]


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("teacher")
    summary = train_teacher.main(DATA + ["--model", "resnet8", "--epochs", "1", "--save_dir", str(save_dir),
                                         "--seed", "1"])
    return summary["best_checkpoint"]


@pytest.mark.parametrize("method", ["ofd", "reviewkd"])
def test_one_epoch_digits_run(teacher_path, tmp_path, method):
    summary = train_student.main(DATA + ["--path_t", teacher_path, "--model_s", "resnet8", "--epochs", "1",
                                         "--save_dir", str(tmp_path), "--seed", "3", "--distill", method])
    assert np.isfinite(summary["best_acc"]) and summary["best_acc"] > 0, summary
