"""topology.metrics against gudhi's own routines (bottleneck, hera's Wasserstein, POT's where installed), a
numpy transcription of linear CKA, and the invariances the metrics promise."""
import math

import numpy as np
import pytest

from topology import metrics as tm
from topology.persistence import rips_diagrams
from topology.point_cloud_pi import PIParams

gudhi = pytest.importorskip("gudhi")


def digit_clouds(count=6, points=40):
    """Real clouds: scikit-learn's digits as 64-d points (pixel values), ``count`` clouds of ``points``."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64)
    return [x[i * points:(i + 1) * points] for i in range(count)]


HAND = [  # (diagram A, diagram B, bottleneck, 1-Wasserstein), worked out by hand with the L-inf metric
    (np.array([[0.0, 1.0], [0.0, 2.0]]), np.array([[0.0, 1.5]]), 0.5, 1.0),
    (np.array([[0.0, 4.0]]), np.zeros((0, 2)), 2.0, 2.0),
    (np.array([[1.0, 3.0], [2.0, 6.0]]), np.array([[1.0, 3.5], [2.5, 6.0]]), 0.5, 1.0),
    (np.array([[0.0, 1.0], [0.0, 1.2], [0.0, 8.0]]), np.array([[0.0, 7.0]]), 1.0, 1.0 + 0.5 + 0.6),
]


@pytest.mark.parametrize("a, b, bott, w1", HAND)
def test_hand_made_diagrams(a, b, bott, w1):
    from gudhi import hera

    assert tm.bottleneck(a, b) == pytest.approx(bott, abs=1e-12)
    assert tm.bottleneck(a, b) == pytest.approx(gudhi.bottleneck_distance(a, b), abs=1e-12)
    assert tm.wasserstein1(a, b) == pytest.approx(w1, abs=1e-12)
    assert tm.wasserstein1(a, b) == pytest.approx(hera.wasserstein_distance(a, b, order=1, delta=1e-9), rel=1e-6)
    assert tm.wasserstein1(b, a) == pytest.approx(w1, abs=1e-12)


def _real_pairs():
    clouds = digit_clouds()
    dgs = [tm.cloud_diagrams(c, dims=(0, 1)) for c in clouds]
    return [(dgs[i][k], dgs[i + 1][k]) for i in range(0, len(dgs) - 1, 2) for k in (0, 1)]


def test_distances_equal_gudhi_on_real_clouds():
    from gudhi import hera

    for a, b in _real_pairs():
        assert len(a) and len(b)
        assert tm.bottleneck(a, b) == pytest.approx(gudhi.bottleneck_distance(a, b), rel=1e-12)
        exact = tm.wasserstein1(a, b)
        approx = hera.wasserstein_distance(a, b, order=1, internal_p=np.inf, delta=1e-6)
        assert exact <= approx * (1 + 1e-9) and approx <= exact * (1 + 1e-6), (exact, approx)
        # order 2, Euclidean ground metric: the general routine
        w2 = tm.wasserstein(a, b, order=2, internal_p=2)
        assert w2 == pytest.approx(hera.wasserstein_distance(a, b, order=2, internal_p=2, delta=1e-6), rel=1e-5)


def test_wasserstein_equals_pot_route_where_installed():
    pytest.importorskip("ot", reason="POT is not a dependency; gudhi.wasserstein needs it")
    from gudhi.wasserstein import wasserstein_distance

    for a, b in _real_pairs():
        assert tm.wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b, order=1, internal_p=np.inf),
                                                      rel=1e-10)


def test_diagrams_are_the_rips_ones():
    cloud = digit_clouds(1)[0]
    st = gudhi.RipsComplex(points=cloud).create_simplex_tree(max_dimension=2)
    st.persistence()
    dg = tm.cloud_diagrams(cloud, dims=(0, 1))
    for k in (0, 1):
        ref = np.asarray(st.persistence_intervals_in_dimension(k)).reshape(-1, 2)
        ref = ref[np.isfinite(ref[:, 1])]
        assert np.allclose(np.sort(dg[k], axis=0), np.sort(ref, axis=0), rtol=1e-12)


@pytest.fixture(scope="module")
def cloud_pair():
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((48, 16)), 0)
    y = np.maximum(x @ rng.standard_normal((16, 10)) + 0.3 * rng.standard_normal((48, 10)), 0)
    params = {0: PIParams.fit(rips_diagrams(x[None], dims=(0,))[0], homology_dim=0)}
    return x, y, params


def test_identical_clouds_give_zero(cloud_pair):
    x, _, params = cloud_pair
    out = tm.topology_metrics(x, x.copy(), dims=(0, 1), pi_params=params, normalize=("diam", "mean"))
    assert set(out) == set(tm.metric_keys((0, 1), ("diam", "mean"), pi_dims=(0,)))
    for key, value in out.items():
        assert value == pytest.approx(1.0 if key == "cka_linear" else 0.0, abs=1e-12), key


def test_normalised_distances_are_scale_invariant(cloud_pair):
    x, y, params = cloud_pair
    base = tm.topology_metrics(x, y, dims=(0, 1), pi_params=params, normalize=("diam", "mean"))
    scaled = tm.topology_metrics(x, 7.5 * y, dims=(0, 1), pi_params=params, normalize=("diam", "mean"))
    for key in base:
        if "_norm_" in key or key == "cka_linear":
            assert scaled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12), key
    # the raw distances do change, so the test above is not vacuous
    assert scaled["bottleneck_h0"] > 2 * base["bottleneck_h0"]
    assert base["bottleneck_h0_norm_diam"] > 0 and base["wasserstein1_h1_norm_mean"] > 0


def test_keys_are_flat_and_named_by_rule(cloud_pair):
    x, y, params = cloud_pair
    norm_params = {0: PIParams.fit([d / tm.normalization_scale(x) for d in rips_diagrams(x[None])[0]])}
    out = tm.topology_metrics(x, y, dims=(0,), pi_params=params, normalize="diam", pi_params_norm=norm_params)
    assert list(out) == ["bottleneck_h0", "wasserstein1_h0", "bottleneck_h0_norm_diam", "wasserstein1_h0_norm_diam",
                         "pi_mse_h0", "pi_mse_h0_norm_diam", "cka_linear"]
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())
    assert out["pi_mse_h0"] > 0
    with pytest.raises(ValueError, match="normalisation"):
        tm.topology_metrics(x, y, normalize="max")
    with pytest.raises(ValueError, match="same items"):
        tm.topology_metrics(x, y[:-1])


def _cka_numpy(x, y):
    """HSIC form with Gram matrices (a transcription independent of the feature-space form used in the code)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka():
    rng = np.random.default_rng(1)
    for d_a, d_b in ((8, 8), (5, 12), (30, 3)):
        x, y = rng.standard_normal((20, d_a)), rng.standard_normal((20, d_b)) + 0.1
        assert tm.linear_cka(x, y) == pytest.approx(_cka_numpy(x, y), rel=1e-10)
    x = rng.standard_normal((25, 6))
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert tm.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert tm.linear_cka(x, 3.0 * x @ q + 2.0) == pytest.approx(1.0, abs=1e-12)
    assert tm.linear_cka(x, rng.standard_normal((25, 6))) < 0.9


def test_mean_metrics_skips_nan():
    out = tm.mean_metrics([{"a": 1.0, "b": math.nan}, {"a": 3.0, "b": math.nan}])
    assert out["a"] == 2.0 and math.isnan(out["b"])
