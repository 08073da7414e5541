"""Rips diagrams: batched MST H0 and gudhi H1 against gudhi's RipsComplex + SimplexTree and the
official reference diagrams."""
import gudhi
import numpy as np
import pytest
import torch

from topology.persistence import h0_deaths_torch, mst_edges, rips_diagrams, rips_h0_deaths


def gudhi_diagram(cloud, dim, max_dimension=1):
    """The official route: RipsComplex + SimplexTree.persistence, one cloud at a time."""
    st = gudhi.RipsComplex(points=np.asarray(cloud, dtype=np.float64)).create_simplex_tree(
        max_dimension=max_dimension
    )
    st.persistence()
    return np.asarray(st.persistence_intervals_in_dimension(dim), dtype=np.float64).reshape(-1, 2)


def split(rows, counts):
    return np.split(rows, np.cumsum(counts)[:-1])


def assert_same_diagram(ours, ref, rtol=1e-9):
    assert ours.shape == ref.shape
    assert np.array_equal(np.isinf(ours), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ours[fin], ref[fin], rtol=rtol, atol=0)


def clouds(kind, rng, b=4, n=20, d=5):
    if kind == "gauss":
        return rng.standard_normal((b, n, d))
    if kind == "ties":  # integer grid: many equal edge lengths
        return rng.integers(0, 3, size=(b, n, d)).astype(np.float64)
    if kind == "duplicates":
        x = rng.standard_normal((b, n, d))
        x[:, 1] = x[:, 0]
        x[:, 5:8] = x[:, 4:5]
        return x
    if kind == "offset":  # post-ReLU-like embeddings sharing a large offset, small spread
        return 1e4 + np.maximum(rng.standard_normal((b, n, d)), 0) * 1e-3
    raise KeyError(kind)


@pytest.mark.parametrize("kind", ["gauss", "ties", "duplicates", "offset"])
def test_small_and_large_batch_routes_agree_with_gudhi(kind):
    """Few clouds take scipy's MST on the CPU, many the batched Prim: both must give gudhi's deaths."""
    from topology import persistence

    x = clouds(kind, np.random.default_rng(7), b=persistence._SMALL_BATCH + 3, n=12, d=4)
    few = rips_h0_deaths(x[:2])
    many = rips_h0_deaths(x)
    np.testing.assert_allclose(few, many[:2], rtol=1e-12, atol=0)
    for ours, cloud in zip(many[:2], x[:2]):
        gd = gudhi_diagram(cloud, 0)
        expected = np.sort(gd[np.isfinite(gd[:, 1]), 1])
        np.testing.assert_allclose(ours[ours > 0], expected, rtol=1e-9)
    # the differentiable small-batch path gives the same lengths
    np.testing.assert_allclose(h0_deaths_torch(torch.tensor(x[:2])).numpy(), few, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("kind", ["gauss", "ties", "duplicates", "offset"])
@pytest.mark.parametrize("n,d", [(2, 1), (9, 3), (30, 16)])
def test_h0_matches_gudhi(kind, n, d):
    rng = np.random.default_rng(n * 100 + d)
    x = clouds(kind, rng, n=max(n, 9) if kind == "duplicates" else n, d=d)
    dg = rips_diagrams(x, dims=(0,), keep_infinite=True)[0]
    for ours, cloud in zip(dg, x):
        assert_same_diagram(ours, gudhi_diagram(cloud, 0))


def test_h0_float32_and_tensor_input():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 12, 4)).astype(np.float32)
    ref = [gudhi_diagram(c.astype(np.float64), 0)[:-1, 1] for c in x]
    deaths_np = rips_h0_deaths(x)
    deaths_t = rips_h0_deaths(torch.from_numpy(x))
    assert isinstance(deaths_t, torch.Tensor) and deaths_t.dtype == torch.float64
    assert deaths_np.shape == (3, 11)
    for i in range(3):
        np.testing.assert_allclose(deaths_np[i], ref[i], rtol=1e-12)
        np.testing.assert_allclose(deaths_t[i].numpy(), ref[i], rtol=1e-12)
    assert np.all(np.diff(deaths_np, axis=1) >= 0)


def test_zero_length_bars_kept_or_dropped():
    x = clouds("duplicates", np.random.default_rng(2), b=2, n=10, d=3)
    kept = rips_diagrams(x, drop_zero=False)[0]
    dropped = rips_diagrams(x)[0]
    for k, dr, cloud in zip(kept, dropped, x):
        assert k.shape == (9, 2) and np.count_nonzero(k[:, 1] == 0) == 4  # 1 + 3 duplicates
        assert_same_diagram(dr, gudhi_diagram(cloud, 0)[:-1])
    gudhi_kept = rips_diagrams(x, drop_zero=False, h0_backend="gudhi")[0]
    for a, b in zip(kept, gudhi_kept):
        assert_same_diagram(a, b)


def test_h1_matches_gudhi_simplex_tree():
    rng = np.random.default_rng(3)
    x = np.concatenate([clouds("gauss", rng, b=3, n=16, d=2), clouds("ties", rng, b=2, n=16, d=2)])
    ours = rips_diagrams(x, dims=(0, 1), keep_infinite=True, n_jobs=1)
    exact_order = rips_diagrams(x, dims=(1,), h1_backend="simplex_tree")[1]
    for i, cloud in enumerate(x):
        ref = gudhi_diagram(cloud, 1, max_dimension=2)
        assert np.array_equal(exact_order[i], ref)
        order = np.lexsort((ref[:, 0], ref[:, 1]))  # ours: by death, ties by birth
        assert_same_diagram(ours[1][i], ref[order], rtol=1e-12)
        assert_same_diagram(ours[0][i], gudhi_diagram(cloud, 0))
    with pytest.raises(ValueError, match="unknown H1 backend 'ripser'"):  # named after the library it calls
        rips_diagrams(x, dims=(1,), h1_backend="ripser")


def test_reference_diagrams(reference_dir):
    ref = np.load(reference_dir / "official_pi_reference.npz")
    ours = rips_diagrams(ref["pcd"], dims=(0, 1), keep_infinite=True)
    for dg, ref_dg in zip(ours[0], split(ref["pd_dim0"], ref["pd_dim0_counts"])):
        assert_same_diagram(dg, ref_dg, rtol=1e-12)
    for dg, ref_dg in zip(ours[1], split(ref["pd_dim1"], ref["pd_dim1_counts"])):
        # same points; gudhi's simplex tree orders equal deaths by simplex keys, we by birth
        assert_same_diagram(dg, ref_dg[np.lexsort((ref_dg[:, 0], ref_dg[:, 1]))], rtol=0)


def test_mst_edges_form_a_spanning_tree():
    x = clouds("gauss", np.random.default_rng(4), b=2, n=15, d=3)
    edges = mst_edges(x)
    assert edges.shape == (2, 14, 2)
    for e in edges.numpy():
        seen = {0}
        for u, v in e:  # Prim's order: each edge joins a new vertex to the tree
            assert u in seen and v not in seen
            seen.add(v)
        assert seen == set(range(15))


def test_h0_deaths_torch_values_and_gradcheck():
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.standard_normal((2, 6, 3)), dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(h0_deaths_torch(x).detach().numpy(), rips_h0_deaths(x.detach()).numpy(),
                               rtol=1e-12)
    assert torch.autograd.gradcheck(h0_deaths_torch, (x,), eps=1e-6, atol=1e-6)


def test_h0_deaths_torch_safe_at_duplicates():
    x = torch.tensor(clouds("duplicates", np.random.default_rng(6), b=2, n=10, d=4), dtype=torch.float32)
    x.requires_grad_(True)
    deaths = h0_deaths_torch(x)
    assert deaths.dtype == torch.float32 and deaths.shape == (2, 9)
    assert torch.count_nonzero(deaths == 0) == 8
    (deaths * torch.arange(9.0)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(5, 32, 64, dtype=torch.float64)
    cpu = rips_h0_deaths(x)
    gpu = rips_h0_deaths(x.cuda())
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-12, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("b", [2, 40])  # a replayed CUDA graph (few clouds) and the batched Prim (many)
def test_cuda_differentiable_h0_matches_cpu(b):
    for trial, kind in enumerate(["gauss", "gauss", "duplicates"]):  # same shape: the graph reads new values
        x = clouds(kind, np.random.default_rng(trial), b=b, n=24, d=8).astype(np.float32)
        cpu = torch.tensor(x, requires_grad=True)
        gpu = torch.tensor(x, device="cuda", requires_grad=True)
        d_cpu, d_gpu = h0_deaths_torch(cpu), h0_deaths_torch(gpu)
        torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-5, atol=1e-6)
        # an order-free loss: near-equal float32 deaths may sort differently on the two devices
        d_cpu.sum().backward()
        d_gpu.sum().backward()
        assert torch.isfinite(gpu.grad).all()
        if kind == "gauss":  # a unique MST: the same gradient (with duplicates, ties may pick other edges)
            torch.testing.assert_close(gpu.grad.cpu(), cpu.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "points,kwargs,message",
    [
        (np.zeros((5, 3)), {}, r"\[B, N, D\]"),
        (np.zeros((2, 1, 3)), {}, "at least 2 points"),
        (np.zeros((2, 4, 3)), {"dims": (2,)}, "dimension 2"),
        (np.zeros((2, 4, 3)), {"dims": ()}, "no homology dimension"),
        (np.zeros((2, 4, 3)), {"h1_backend": "nope"}, "unknown H1 backend"),
    ],
)
def test_bad_input(points, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rips_diagrams(points, **kwargs)


def test_non_finite_cloud_named():
    x = np.zeros((4, 5, 2))
    x[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"point cloud\(s\) 2 "):
        rips_h0_deaths(x)
    with pytest.raises(ValueError, match=r"point cloud\(s\) 2 "):
        h0_deaths_torch(torch.from_numpy(x))
    with pytest.raises(ValueError, match="torch.Tensor"):
        h0_deaths_torch(x)


def test_chunked_large_batch_float32_matches_gudhi(monkeypatch):
    """Many clouds through several Prim chunks, each through several Gram sub-chunks of a reused
    float64 buffer, from float32 input: every cloud's deaths equal gudhi's on the same float32 values."""
    from topology import persistence

    monkeypatch.setitem(persistence._CHUNK_BYTES, "cpu", 8 * 3 * 10 * 10 * 13)  # 13 clouds per Prim chunk
    monkeypatch.setitem(persistence._GRAM_BYTES, "cpu", 8 * 10 * 6 * 4)  # 4 clouds per Gram sub-chunk
    rng = np.random.default_rng(11)
    x = np.concatenate([clouds(k, rng, b=10, n=10, d=6) for k in ("gauss", "ties", "duplicates", "offset")])
    x = x.astype(np.float32)
    deaths = rips_h0_deaths(x)
    assert deaths.shape == (40, 9) and deaths.dtype == np.float64
    for ours, cloud in zip(deaths, x):
        gd = gudhi_diagram(cloud, 0)
        np.testing.assert_allclose(ours[ours > 0], np.sort(gd[np.isfinite(gd[:, 1]), 1]), rtol=1e-9)
    torch.testing.assert_close(rips_h0_deaths(torch.from_numpy(x)).numpy(), deaths, rtol=0, atol=0)


def test_non_finite_cloud_named_in_large_batches(monkeypatch):
    """The batched route finds NaN/inf from the squared norms; the message names the global index."""
    from topology import persistence

    monkeypatch.setitem(persistence._CHUNK_BYTES, "cpu", 8 * 3 * 5 * 5 * 20)  # 20 clouds per Prim chunk
    x = np.random.default_rng(0).standard_normal((45, 5, 3)).astype(np.float32)
    x[37, 2, 0] = np.inf
    for call in (lambda: rips_h0_deaths(x), lambda: rips_diagrams(x),
                 lambda: rips_diagrams(x, h0_backend="gudhi"), lambda: rips_diagrams(x, dims=(1,))):
        with pytest.raises(ValueError, match=r"point cloud\(s\) 37 contain NaN or inf"):
            call()
    big = np.random.default_rng(1).standard_normal((30, 5, 3)) * 1e200  # finite, but squares overflow
    with pytest.raises(ValueError, match="too large"):
        rips_h0_deaths(big)
