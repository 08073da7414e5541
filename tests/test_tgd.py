"""TGD distiller: golden loss from an independent numpy formula, gradients only to the student."""
import numpy as np
import pytest
import torch

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


def np_gram(f):
    f = f.reshape(f.shape[0], -1)
    g = f @ f.T
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def reference_losses(fs, f1, f2, ls, l1, l2, y, temp=4.0, a=0.99, per="mean"):
    p = np_softmax(ls)
    ce = -np.mean(np.log(p[np.arange(len(y)), y]))
    sim = 0.0
    for k in (1, 2, 3):
        mix = a * np_gram(f1[k]) + (1 - a) * np_gram(f2[k])
        mix = mix / np.linalg.norm(mix, axis=1, keepdims=True)
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
    s, t = wrn_like(), wrn_like()
    with pytest.raises(ValueError, match="two teachers"):
        distiller_dict["tgd"](s, t)
    with pytest.raises(ValueError, match="kl_reduction"):
        distiller_dict["tgd"](s, t, teacher2=wrn_like(in_channels=6), kl_reduction="sum")
    with pytest.raises(ValueError, match="alpha"):
        distiller_dict["tgd"](s, t, teacher2=wrn_like(in_channels=6), alpha=1.5)
    tgd = distiller_dict["tgd"](s, t, teacher2=wrn_like(in_channels=6), stages=(1, 2, 7)).train()
    x, y, pi = batch()
    with pytest.raises(ValueError, match="stages"):
        tgd(x, y, pi=pi)
    with pytest.raises(ValueError, match="pi"):
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
