"""--compile (engine.trainer), AMP precision of the KD terms, the teacher's single no-grad pass per step.

On the CPU --compile must change nothing (same weights as without it); the CUDA test runs only where a
GPU exists (benchmarks/gpu_checks.sh).
"""
import numpy as np
import pytest
import torch

from datasets import build_datasets
from distiller import get_distiller
from distiller.losses import kd_loss
from distiller.tgd import TGD
from engine.stage import seed_everything
from engine.trainer import Trainer

from helpers import DigitsNet as TinyNet
from test_engine import make_cfg


def _fit(tmp_path, name, *extra, device="cpu", distill="vanilla"):
    data = build_datasets("digits", "unused", image_size=8)
    cfg = make_cfg(tmp_path / name, "--epochs", "1", "--device", device, *extra)
    seed_everything(cfg.seed, cfg.deterministic)
    model = TinyNet()
    if distill == "vanilla":
        d = get_distiller("vanilla")(model)
    else:
        d = get_distiller(distill)(model, TinyNet(), gamma=1.0, alpha=1.0, image_size=8)
    return Trainer(d, data.train, data.test, cfg, cfg.run_dir).fit(), model


def test_compile_is_ignored_on_cpu_and_changes_nothing(tmp_path, capsys):
    plain, m_plain = _fit(tmp_path, "plain")
    capsys.readouterr()
    compiled, m_comp = _fit(tmp_path, "compiled", "--compile")
    out = capsys.readouterr().out
    assert out.count("--compile is ignored on cpu") == 1
    assert compiled["last_acc"] == plain["last_acc"]
    for a, b in zip(m_plain.state_dict().values(), m_comp.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_compile_mode_is_refused(tmp_path, capsys):
    """Refused at the door, by the one declaration of the modes (--compile_mode's choices)."""
    with pytest.raises(SystemExit):
        make_cfg(tmp_path / "run", "--compile", "--compile_mode", "fast")
    assert "--compile_mode: invalid choice: 'fast'" in capsys.readouterr().err


class _Counting(TinyNet):
    calls = 0

    def forward(self, x, is_feat=False):
        type(self).calls += 1
        out = super().forward(x, is_feat)
        type(self).grad_enabled = torch.is_grad_enabled()
        return out


def test_teacher_runs_once_per_step_without_grad():
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 10, (6,))

    class T1(_Counting):
        calls = 0

    d = get_distiller("kd")(TinyNet(), T1(), gamma=1.0, alpha=1.0, image_size=8)
    T1.calls = 0
    d.train()
    logits, losses = d(x, y, index=torch.arange(6))
    assert T1.calls == 1 and T1.grad_enabled is False
    assert not d.teacher.training and set(losses) == {"loss_ce", "loss_kd"}

    class A(_Counting):
        calls = 0

    class B(_Counting):  # the PI teacher takes the 6 channels of the persistence images
        calls = 0

        def __init__(self):
            super().__init__()
            self.features[0] = torch.nn.Conv2d(6, 16, 3, padding=1, bias=False)

    tgd = TGD(TinyNet(), A(), teacher2=B(), stages=(0,))
    tgd.train()
    A.calls = B.calls = 0
    tgd(x, y, pi=torch.randn(6, 6, 8, 8))
    assert A.calls == 1 and B.calls == 1 and not A.grad_enabled and not B.grad_enabled


def test_kd_term_is_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    sb, tb = s.bfloat16(), t.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = kd_loss(sb, tb, T=4.0)
    assert loss.dtype == torch.float32
    # numpy reference in float64 from the same bf16-rounded logits
    zs, zt = sb.double().numpy() / 4.0, tb.double().numpy() / 4.0
    ls = zs - np.log(np.exp(zs).sum(1, keepdims=True))
    lt = zt - np.log(np.exp(zt).sum(1, keepdims=True))
    ref = (np.exp(lt) * (lt - ls)).sum() * 16.0 / 5
    assert abs(float(loss) - ref) < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_fast_path_trains_on_cuda(tmp_path):
    plain, _ = _fit(tmp_path, "cuda_plain", "--no-deterministic", device="cuda", distill="kd")
    fast, _ = _fit(tmp_path, "cuda_fast", "--no-deterministic", "--compile", "--data_on_device", "--amp",
                   "--channels_last", device="cuda", distill="kd")
    assert fast["last_acc"] > 20 and abs(fast["last_acc"] - plain["last_acc"]) < 25


def test_tgd_terms_are_float32_under_bf16_autocast():
    from distiller.tgd import normalized_gram

    f = torch.randn(4, 3, 5, 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gram = normalized_gram(f)
    flat = f.double().reshape(4, -1).numpy()  # numpy reference from the same bf16 values
    g = flat @ flat.T
    ref = g / np.linalg.norm(g, axis=1, keepdims=True)
    assert gram.dtype == torch.float32 and np.abs(gram.numpy() - ref).max() < 1e-6
