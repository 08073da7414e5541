"""Persistence images against gudhi's PersistenceImage and the official TopKD images."""
import numpy as np
import pytest
import torch
from gudhi.representations import PersistenceImage

from topology.point_cloud_pi import (
    WEIGHTS,
    PIParams,
    h0_images_torch,
    persistence_images,
    persistence_images_torch,
)
from topkd_io import read_yaml
from topology.persistence import h0_deaths_torch, rips_diagrams, rips_h0_deaths


def gudhi_images(diagrams, params):
    """gudhi's images with the same parameters (its weight reads one (birth, persistence) point)."""
    fn = WEIGHTS[params.weight]
    pi = PersistenceImage(
        bandwidth=params.bandwidth,
        weight=lambda pt: fn(pt[0], pt[1], np),
        resolution=list(params.resolution),
        im_range=list(params.im_range),
    )
    return pi.fit_transform(diagrams)


def random_diagrams(rng, n=6, max_k=9):
    out = []
    for _ in range(n):
        k = int(rng.integers(1, max_k))
        birth = rng.uniform(0, 2, k)
        out.append(np.stack([birth, birth + rng.uniform(0.01, 3, k)], axis=1))
    return out


def split(rows, counts):
    return np.split(rows, np.cumsum(counts)[:-1])


@pytest.mark.parametrize("weight", ["topkd", "linear", "tanh", "constant"])
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_and_torch_equal_gudhi(weight, seed):
    rng = np.random.default_rng(seed)
    dg = random_diagrams(rng)
    x0, y0 = rng.uniform(-0.5, 0.5, 2)
    params = PIParams(
        bandwidth=rng.uniform(0.05, 0.8),
        im_range=(x0, x0 + rng.uniform(1, 3), y0, y0 + rng.uniform(1, 3)),
        resolution=(int(rng.integers(3, 9)), int(rng.integers(3, 9))),  # not square: axes checked
        weight=weight,
    )
    ref = gudhi_images(dg, params)
    np.testing.assert_allclose(persistence_images(dg, params), ref, rtol=1e-12, atol=1e-14)

    k = max(len(d) for d in dg)
    births = torch.zeros(len(dg), k, dtype=torch.float64)
    pers = torch.zeros_like(births)
    mask = torch.zeros_like(births)
    for i, d in enumerate(dg):
        births[i, : len(d)] = torch.from_numpy(d[:, 0])
        pers[i, : len(d)] = torch.from_numpy(d[:, 1] - d[:, 0])
        mask[i, : len(d)] = 1
    ours_t = persistence_images_torch(births, pers, params, mask)
    np.testing.assert_allclose(ours_t.numpy(), ref, rtol=1e-12, atol=1e-14)


def test_infinite_points_ignored_and_empty_diagrams():
    rng = np.random.default_rng(3)
    dg = random_diagrams(rng, n=3)
    params = PIParams(0.3, (0, 2, 0, 3), (5, 4))
    with_inf = [np.vstack([d, [[0.0, np.inf]]]) for d in dg] + [np.zeros((0, 2))]
    out = persistence_images(with_inf, params)
    np.testing.assert_allclose(out[:3], gudhi_images(dg, params), rtol=1e-12)
    assert out.shape == (4, 20) and not out[3].any()


def test_h0_images_torch_matches_gudhi_and_has_gradients():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 12, 3))
    x[:, 1] = x[:, 0]  # a zero-length bar in every cloud
    dg = rips_diagrams(x)[0]  # gudhi convention: zero bars dropped
    params = PIParams(0.25, (0, 0, 0, 2.5), (20, 20), weight="constant")  # weight nonzero at p=0
    ref = gudhi_images(dg, params)
    deaths = torch.from_numpy(rips_h0_deaths(x))
    deaths = torch.cat([deaths, torch.full((4, 1), float("inf"), dtype=torch.float64)], dim=1)
    np.testing.assert_allclose(h0_images_torch(deaths, params).numpy(), ref, rtol=1e-12, atol=1e-14)

    pts = torch.tensor(x, requires_grad=True)
    h0_images_torch(h0_deaths_torch(pts), params).sum().backward()
    assert torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0


@pytest.mark.parametrize("dim", [0, 1])
def test_reference_images_from_diagrams(reference_dir, dim):
    ref = np.load(reference_dir / "official_pi_reference.npz")
    dg = split(ref[f"pd_dim{dim}"], ref[f"pd_dim{dim}_counts"])
    params = PIParams.fit(dg, homology_dim=dim)
    assert np.abs(persistence_images(dg, params) - ref[f"pi_dim{dim}"]).max() < 1e-5


def test_reference_images_from_point_clouds(reference_dir):
    """The stage's acceptance test: point clouds -> our diagrams -> fitted images == official."""
    ref = np.load(reference_dir / "official_pi_reference.npz")
    dgs = rips_diagrams(ref["pcd"], dims=(0, 1))
    for dim in (0, 1):
        params = PIParams.fit(dgs[dim])
        assert np.abs(persistence_images(dgs[dim], params) - ref[f"pi_dim{dim}"]).max() < 1e-5
    # the differentiable H0 route gives the same images
    p0 = PIParams.fit(dgs[0])
    deaths = h0_deaths_torch(torch.from_numpy(ref["pcd"]).double())
    assert np.abs(h0_images_torch(deaths, p0).numpy() - ref["pi_dim0"]).max() < 1e-5


def test_fit_rule_and_yaml_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    dg = random_diagrams(rng, n=40)
    params = PIParams.fit(dg, homology_dim=1)
    bp = np.concatenate(dg)
    bp[:, 1] -= bp[:, 0]
    np.testing.assert_allclose(params.im_range, [bp[:, 0].min(), bp[:, 0].max(), bp[:, 1].min(), bp[:, 1].max()])
    assert persistence_images(dg, params).max() == pytest.approx(1.0)
    path = tmp_path / "sub" / "pi_params.yaml"
    params.save_yaml(path)
    assert PIParams.from_dict(read_yaml(path)) == params
    assert PIParams.from_dict(params.to_dict()) == params
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(
    "call,exc,message",
    [
        (lambda: PIParams.fit([]), ValueError, "no finite point"),
        (lambda: PIParams.fit([np.array([[0.0, np.inf]])]), ValueError, "no finite point"),
        (lambda: PIParams(0.1, (0, 1, 0, 1), weight="nope"), ValueError, "unknown persistence-image weight"),
        (lambda: PIParams(-1.0, (0, 1, 0, 1)), ValueError, "bandwidth"),
        (lambda: PIParams.from_dict({"bandwidth": 1.0}), ValueError, "missing keys"),
        (lambda: persistence_images(np.zeros((3, 2)), PIParams(0.1, (0, 1, 0, 1))), ValueError, "list of diagrams"),
    ],
)
def test_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()
