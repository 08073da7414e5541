"""RipsNet: official checkpoints reproduce the official outputs; our checkpoints round-trip."""
import numpy as np
import pytest
import torch

from topology.point_cloud_pi import PIParams
from topology.ripsnet import RipsNet, default_units, load_ripsnet, save_ripsnet

TAGS = ["resnet56_mean", "wrn_40_2_sum"]


@pytest.mark.parametrize("tag", TAGS)
def test_official_outputs(reference_dir, tag):
    model, ckpt = load_ripsnet(reference_dir / f"official_ripsnet_{tag}.pth")
    assert not model.training and ckpt["pi_params"] is None
    assert model.units == default_units(model.input_dim)  # the width table covers the official nets
    ref = np.load(reference_dir / "official_outputs.npz")
    x = torch.from_numpy(ref[f"ripsnet_{tag}_in"])
    with torch.no_grad():
        batched = model(x)
        single = model(x[0])
    assert batched.shape == (3, 400) and single.shape == (1, 400)
    np.testing.assert_allclose(batched.numpy(), ref[f"ripsnet_{tag}_out_batched"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(single.numpy(), ref[f"ripsnet_{tag}_out_single"], atol=1e-6, rtol=0)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = RipsNet(32, pooling="sum")
    params = PIParams(0.3, (0, 0, 0.1, 2.0))
    path = tmp_path / "run" / "sum_best.pth"
    save_ripsnet(model, path, pi_params=params, manifest={"teacher": "x"}, epoch=3)
    assert sorted(p.name for p in path.parent.iterdir()) == ["sum_best.pth"]
    loaded, ckpt = load_ripsnet(path)
    assert loaded.pooling == "sum" and loaded.units == model.units
    assert PIParams.from_dict(ckpt["pi_params"]) == params
    assert ckpt["manifest"] == {"teacher": "x"} and ckpt["epoch"] == 3
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_explicit_units_and_gradients():
    model = RipsNet(5, pooling="mean", units=[5, 8, 8, 4, 6, 6, 6, 9], resolution=3)
    x = torch.randn(4, 7, 5, requires_grad=True)
    out = model(x)
    assert out.shape == (4, 9) and ((out > 0) & (out < 1)).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_width_mismatch_message():
    model = RipsNet(64)
    with pytest.raises(ValueError, match="RipsNet expects D=64 features, got 128"):
        model(torch.zeros(2, 8, 128))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_dim": 64, "pooling": "max"}, "unknown RipsNet pooling"),
        ({"input_dim": 100}, "no default RipsNet widths"),
        ({"input_dim": 8, "units": [8, 4, 4]}, "8 positive widths"),
        ({"input_dim": 8, "units": [16, 4, 4, 4, 4, 4, 4, 4]}, "input_dim is 8"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RipsNet(**kwargs)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_ripsnet(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="RipsNet checkpoint .* cannot be read"):
        load_ripsnet(bad)
    wrong = tmp_path / "wrong.pth"
    state = RipsNet(16).state_dict()
    torch.save({"model": state, "units_list": default_units(32), "operator": "mean"}, wrong)
    with pytest.raises(ValueError, match="do not fit a RipsNet"):
        load_ripsnet(wrong)
