"""TGD distiller: golden loss from an independent numpy formula, gradients only to the student."""
import numpy as np
import pytest
import torch
from torch import nn

from distiller import distiller_dict
from helpers import TinyNet


def wrn_like(width=4, in_channels=3):
    """feats = [stem, stage1, stage2, stage3, pooled], like the WRNs of the zoo; 5 classes."""
    return TinyNet((width,) * 4, num_classes=5, in_channels=in_channels)


def make(seed=0, **kw):
    torch.manual_seed(seed)
    student, t1, t2 = wrn_like(3), wrn_like(5), wrn_like(4, in_channels=6)
    return distiller_dict["tgd"](student, t1, teacher2=t2, **kw), student, t1, t2


def batch(seed=1, b=6):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, 8, 8, generator=g), torch.randint(0, 5, (b,), generator=g),
            torch.rand(b, 6, 10, 10, generator=g))


# ---- independent numpy reference --------------------------------------------------------------------

def np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def np_kl(s, t, temp, per):
    ps, pt = np_softmax(s / temp), np_softmax(t / temp)
    total = np.sum(pt * (np.log(pt) - np.log(ps)))
    return total / (s.size if per == "mean" else s.shape[0])


def np_raw_gram(f):
    f = f.reshape(f.shape[0], -1)
    return f @ f.T


def np_rownorm(g):
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def np_gram(f):
    return np_rownorm(np_raw_gram(f))


def reference_losses(fs, f1, f2, ls, l1, l2, y, temp=4.0, a=0.99, per="mean"):
    p = np_softmax(ls)
    ce = -np.mean(np.log(p[np.arange(len(y)), y]))
    sim = 0.0
    for k in (1, 2, 3):
        mix = np_rownorm(a * np_raw_gram(f1[k]) + (1 - a) * np_raw_gram(f2[k]))  # raw Grams mixed, then n
        sim += np.mean((np_gram(fs[k]) - mix) ** 2)
    return {"loss_ce": 0.1 * ce,
            "loss_kd_img": 0.9 * temp ** 2 * a * np_kl(ls, l1, temp, per),
            "loss_kd_pi": 0.9 * temp ** 2 * (1 - a) * np_kl(ls, l2, temp, per),
            "loss_sim": 1000.0 * sim}


@pytest.mark.parametrize("per", ["mean", "batchmean"])
def test_losses_equal_numpy_formula(per):
    tgd, student, t1, t2 = make(kl_reduction=per)
    tgd.train()
    x, y, pi = batch()
    logits, losses = tgd(x, y, index=torch.arange(6), pi=pi)
    # model outputs (in the same modes the distiller uses) as float64 numpy
    with torch.no_grad():
        fs, ls = student(x, is_feat=True)
        f1, l1 = t1(x, is_feat=True)
        f2, l2 = t2(pi, is_feat=True)
    n = lambda ts: [t.double().numpy() for t in ts]  # noqa: E731
    ref = reference_losses(n(fs), n(f1), n(f2), ls.double().numpy(), l1.double().numpy(), l2.double().numpy(),
                           y.numpy(), per=per)
    assert set(losses) == set(ref)
    for key, value in ref.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-4, abs=1e-7), key
    assert logits.shape == (6, 5)


def test_mean_kl_is_batchmean_over_classes():
    x, y, pi = batch()
    mean = make(kl_reduction="mean")[0].train()(x, y, pi=pi)[1]
    batchmean = make(kl_reduction="batchmean")[0].train()(x, y, pi=pi)[1]
    for key in ("loss_kd_img", "loss_kd_pi"):
        assert batchmean[key].item() == pytest.approx(5 * mean[key].item(), rel=1e-5)


def test_gradients_reach_only_the_student_and_teachers_stay_in_eval():
    tgd, student, t1, t2 = make()
    tgd.train()
    assert not t1.training and not t2.training and student.training
    x, y, pi = batch()
    _, losses = tgd(x, y, pi=pi)
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None and not p.requires_grad for p in list(t1.parameters()) + list(t2.parameters()))
    ids = {id(p) for p in tgd.learnable_parameters()}
    assert ids == {id(p) for p in student.parameters()}
    assert tgd.eval()(x).shape == (6, 5)


def test_bad_configuration_is_rejected():
    """The options are checked once, where they are declared (the range of --tgd_alpha and --kd_T, the choices of
    --kd_reduction); the PI teacher and the batch's ``pi`` are required arguments."""
    import argparse

    import train_student
    from distiller.options import resolve

    s, t = wrn_like(), wrn_like()
    with pytest.raises(TypeError, match="teacher2"):
        distiller_dict["tgd"](s, t)
    for name, value, flag in [("tgd_alpha", 1.5, "--tgd_alpha"), ("kd_T", 0.0, "--kd_T")]:
        with pytest.raises(ValueError, match=flag):
            resolve(distiller_dict["tgd"], argparse.Namespace(**{name: value}))
    with pytest.raises(SystemExit):  # argparse: invalid choice
        train_student.build_parser().parse_args(["--distill", "tgd", "--kd_reduction", "sum"])
    tgd = distiller_dict["tgd"](s, t, teacher2=wrn_like(in_channels=6), stages=(1, 2, 7)).train()
    x, y, pi = batch()
    with pytest.raises(ValueError, match="stages"):
        tgd(x, y, pi=pi)
    with pytest.raises(TypeError, match="pi"):
        tgd(x, y)


def test_with_the_paper_networks():
    import models

    torch.manual_seed(0)
    student = models.model_dict["wrn_16_1"](num_classes=10)
    t1 = models.model_dict["wrn_16_3"](num_classes=10)
    t2 = models.model_dict["wrn_16_3"](num_classes=10, in_channels=6)
    tgd = distiller_dict["tgd"](student, t1, teacher2=t2).train()
    x, y, pi = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), torch.rand(4, 6, 50, 50)
    logits, losses = tgd(x, y, index=torch.arange(4), pi=pi)
    assert logits.shape == (4, 10) and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in list(t1.parameters()) + list(t2.parameters()))


# ---- golden test on fixed tensors: the official formula, transcribed ----------------------------------

class FixedOutputs(nn.Module):
    """A 'network' returning fixed block outputs and logits whatever the input (feats[1:4] = blocks)."""

    def __init__(self, blocks, logits):
        super().__init__()
        self.blocks = [torch.as_tensor(b, dtype=torch.float64) for b in blocks]
        self.logits = torch.as_tensor(logits, dtype=torch.float64)
        self.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))  # so the student has a parameter

    def forward(self, x, is_feat=False):
        feats = [None] + [b + self.anchor for b in self.blocks] + [None]
        logits = self.logits + self.anchor
        return (feats, logits) if is_feat else logits


def fixed_tensors(b=5, classes=4):
    """Deterministic block outputs `[b, c, h, w]` of three blocks for the student and the two teachers;
    the PI teacher's blocks are ~20x larger than the image teacher's (so the mixing order matters)."""
    rng = np.random.default_rng(2024)
    shapes = [(b, 2, 4, 4), (b, 3, 2, 2), (b, 4, 1, 1)]
    student = [rng.standard_normal(s) for s in shapes]
    t1 = [np.abs(rng.standard_normal(s)) for s in shapes]
    t2 = [20.0 * np.abs(rng.standard_normal(s)) for s in shapes]
    logits = [rng.standard_normal((b, classes)) * 3 for _ in range(3)]
    target = rng.integers(0, classes, size=b)
    return student, t1, t2, logits, target


def official_total_loss(fs, f1, f2, ls, l1, l2, y, a, T=4.0, lam=0.9):
    """The official `main_train.py` total, written out in numpy float64: (1 - lam) CE + lam T^2 [a KL1 +
    (1 - a) KL2] + sp / 3 * 3000, KL = KLDivLoss() (element-wise mean of p_t (log p_t - log p_s)),
    sp = sum over blocks of MSE(rownorm(Gs), rownorm(a G1 + (1 - a) G2)), G = F F^T (F flattened)."""
    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    ce = -np.mean(log_softmax(ls)[np.arange(len(y)), y])

    def kldiv(s, t):
        log_ps, log_pt = log_softmax(s / T), log_softmax(t / T)
        return np.mean(np.exp(log_pt) * (log_pt - log_ps))

    sp = 0.0
    for s_, t1_, t2_ in zip(fs, f1, f2):
        g = lambda f: f.reshape(len(f), -1) @ f.reshape(len(f), -1).T  # noqa: E731
        tmap = a * g(t1_) + (1 - a) * g(t2_)
        tmap = tmap / np.maximum(np.linalg.norm(tmap, axis=1, keepdims=True), 1e-12)
        smap = g(s_) / np.maximum(np.linalg.norm(g(s_), axis=1, keepdims=True), 1e-12)
        sp += np.mean((smap - tmap) ** 2)
    kd = a * kldiv(ls, l1) + (1 - a) * kldiv(ls, l2)
    return (1 - lam) * ce + lam * T * T * kd + sp / 3.0 * 3000.0, sp


@pytest.mark.parametrize("a", [0.0, 1.0, 0.99])
def test_golden_official_formula_on_fixed_tensors(a):
    fs, f1, f2, (ls, l1, l2), y = fixed_tensors()
    tgd = distiller_dict["tgd"](FixedOutputs(fs, ls), FixedOutputs(f1, l1), teacher2=FixedOutputs(f2, l2), alpha=a)
    tgd.train()
    dummy = torch.zeros(len(y), 3, 2, 2, dtype=torch.float64)
    _, losses = tgd(dummy, torch.as_tensor(y), pi=dummy)
    total = sum(v.item() for v in losses.values())
    want, want_sp = official_total_loss(fs, f1, f2, ls, l1, l2, y, a)
    print(f"a={a}: TGD total loss on the golden tensors {total:.6f} (official formula {want:.6f})")
    assert total == pytest.approx(want, rel=1e-10)
    assert losses["loss_sim"].item() == pytest.approx(1000.0 * want_sp, rel=1e-10)
    if 0 < a < 1:  # the old order (normalise each teacher's Gram, mix, normalise) gives another value
        old = sum(np.mean((np_gram(s) - np_rownorm(a * np_gram(t1) + (1 - a) * np_gram(t2))) ** 2)
                  for s, t1, t2 in zip(fs, f1, f2))
        assert abs(1000.0 * old - losses["loss_sim"].item()) > 1e-3 * losses["loss_sim"].item()


def test_teacher_inputs_are_checked_at_construction():
    s, t, t2 = wrn_like(3), wrn_like(5), wrn_like(4, in_channels=6)
    with pytest.raises(ValueError, match=r"PI teacher \(--path_t2\) takes 3-channel .* have 6"):
        distiller_dict["tgd"](s, t, teacher2=wrn_like(4))  # an image teacher as the PI teacher
    with pytest.raises(ValueError, match=r"image teacher \(--path_t\) takes 6-channel"):
        distiller_dict["tgd"](s, t2, teacher2=t2)
    distiller_dict["tgd"](s, t, teacher2=t2)
