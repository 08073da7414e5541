"""Exact differentiable H1: diagrams equal gudhi's RipsComplex (and the official reference diagrams), gradients
of a persistence-image loss agree with finite differences."""
import numpy as np
import pytest
import torch

from topology.persistence import h1_diagrams_torch, rips_h1_pairs
from topology.point_cloud_pi import PIParams, h1_images_torch

gudhi = pytest.importorskip("gudhi")


def gudhi_h1(cloud):
    st = gudhi.RipsComplex(points=np.asarray(cloud, dtype=np.float64)).create_simplex_tree(max_dimension=2)
    st.persistence()
    return np.asarray(st.persistence_intervals_in_dimension(1), dtype=np.float64).reshape(-1, 2)


def ours(points):
    births, deaths, mask = h1_diagrams_torch(torch.as_tensor(points, dtype=torch.float64))
    return [np.stack([b[m > 0], d[m > 0]], 1) for b, d, m in zip(births.numpy(), deaths.numpy(), mask.numpy())]


def same_points(a, b):
    a, b = a[np.lexsort((a[:, 0], a[:, 1]))], b[np.lexsort((b[:, 0], b[:, 1]))]
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_h1_equals_gudhi_rips_complex_on_20_clouds():
    rng = np.random.default_rng(0)
    clouds = [rng.standard_normal((24, 8)) for _ in range(10)]  # Gaussian, and post-ReLU-like clouds
    clouds += [np.maximum(rng.standard_normal((24, 8)), 0) + 0.01 * rng.random((24, 8)) for _ in range(10)]
    got = ours(np.stack(clouds))
    counts = []
    for cloud, dg in zip(clouds, got):
        ref = gudhi_h1(cloud)
        assert same_points(dg, ref), (dg, ref)
        counts.append(len(ref))
    assert sum(counts) > 20  # the clouds do have H1 points
    for cloud, pairs in zip(clouds, rips_h1_pairs(np.stack(clouds))):  # births are edge lengths, deaths too
        assert pairs.dtype == np.int64 and pairs.shape[1] == 4


def test_h1_equals_official_reference_diagrams(reference_dir):
    ref = np.load(reference_dir / "official_pi_reference.npz")
    counts = ref["pd_dim1_counts"]
    starts = np.concatenate([[0], np.cumsum(counts)])
    pcd = ref["pcd"][:3].astype(np.float64)  # the official code casts the float32 clouds to float64
    for i, dg in enumerate(ours(pcd)):
        official = ref["pd_dim1"][starts[i]:starts[i + 1]]
        official = official[np.isfinite(official[:, 1])]
        assert same_points(dg, official), i


def test_rows_sorted_and_padding_masked():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((3, 20, 3)))
    births, deaths, mask = h1_diagrams_torch(x)
    assert births.shape == deaths.shape == mask.shape and births.shape[0] == 3
    for b, d, m in zip(births, deaths, mask):
        n = int(m.sum())
        assert torch.all(m[:n] == 1) and torch.all(m[n:] == 0)
        assert torch.all(d[:n] > b[:n]) and torch.all(d[1:n] >= d[: n - 1])
        assert torch.all(b[n:] == 0) and torch.all(d[n:] == 0)
    b, d, m = h1_diagrams_torch(torch.rand(2, 3, 2))  # three points: no loop
    assert b.shape == (2, 0) and d.shape == (2, 0) and m.shape == (2, 0)


def test_gradient_of_h1_image_loss_matches_finite_differences():
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((1, 14, 3))
    dgs = ours(x0)
    assert all(len(d) for d in dgs)
    params = PIParams.fit(dgs, resolution=(6, 6), homology_dim=1)
    weights = torch.from_numpy(rng.standard_normal((1, 36)))

    def loss(points):
        b, d, m = h1_diagrams_torch(points)
        return (h1_images_torch(b, d, m, params) * weights).sum()

    x = torch.from_numpy(x0).requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (x,), eps=1e-6, atol=1e-6, rtol=1e-4)
    grad, = torch.autograd.grad(loss(x), x)
    assert grad.abs().sum() > 0


def test_topology_term_with_both_dimensions_is_the_mean_of_the_two_mses():
    from distiller.topkd import ExactH0PI, ExactH1PI, TopologyTerm, exact_images
    from topology.persistence import rips_diagrams

    rng = np.random.default_rng(2)
    ct, cs = rng.standard_normal((16, 5)), rng.standard_normal((16, 5))
    dgs = rips_diagrams(np.stack([ct, cs]), dims=(0, 1))
    params = {0: PIParams.fit(dgs[0], homology_dim=0), 1: PIParams.fit(dgs[1], homology_dim=1)}
    shapes = [(16, 5)]
    both = TopologyTerm(exact_images(params, (0, 1)), shapes, shapes, 1.0)
    single = [TopologyTerm(ExactH0PI(params[0]), shapes, shapes, 1.0),
              TopologyTerm(ExactH1PI(params[1]), shapes, shapes, 1.0)]
    t, s = torch.tensor(ct), torch.tensor(cs, requires_grad=True)
    got = both([s], [t])
    want = sum(term([s], [t]) for term in single) / 2
    assert got.item() == pytest.approx(want.item(), rel=1e-6) and got.item() > 0
    got.backward()
    assert s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="homology dimension 1"):
        exact_images({0: params[0]}, (0, 1))
