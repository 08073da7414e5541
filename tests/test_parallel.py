"""The topology kernels' own worker pool (topology.persistence.run_parts) gives the single-thread results, names bad clouds by their
global index, and leaves the caller's torch thread count as it was."""
import numpy as np
import pytest
import torch

from topology import persistence as parallel
from topology.persistence import rips_h0_deaths
from topology.point_cloud_pi import PIParams, persistence_images


def test_split():
    assert parallel.split(45, 1, 20) == [(0, 20), (20, 40), (40, 45)]  # one worker: the plain chunked loop
    assert parallel.split(200, 2, 1365) == [(0, 100), (100, 200)]
    assert parallel.split(2000, 2, 512) == [(0, 500), (500, 1000), (1000, 1500), (1500, 2000)]
    assert parallel.split(0, 2, 10) == []


def test_pooled_kernels_equal_single_thread(monkeypatch):
    x = np.maximum(np.random.default_rng(0).standard_normal((200, 24, 6)), 0)
    before = torch.get_num_threads()
    ref = rips_h0_deaths(x)
    params = PIParams.fit([np.stack([np.zeros_like(d), d], 1) for d in ref[:50]])
    dgs = [np.stack([np.zeros_like(d), d], 1) for d in ref]
    ref_img = persistence_images(dgs, params)
    calls = []
    real = parallel.run_parts
    monkeypatch.setattr(parallel, "run_parts", lambda fn, parts, workers: calls.append(workers) or real(fn, parts, workers))
    torch.set_num_threads(2)
    try:
        got = rips_h0_deaths(x)
        img = persistence_images(dgs, params)
        assert torch.get_num_threads() == 2  # the caller's count is untouched by the workers' single thread
        x[150, 3, 2] = np.nan
        with pytest.raises(ValueError, match=r"point cloud\(s\) 150 contain NaN"):
            rips_h0_deaths(x)
    finally:
        torch.set_num_threads(before)
    assert calls[:2] == [2, 2]  # both kernels went through two workers
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(img, ref_img, rtol=1e-13, atol=0)
