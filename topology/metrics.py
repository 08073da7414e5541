"""How close two point clouds are topologically: distances between their persistence diagrams and images, and
linear CKA between the feature matrices (docs/topology.md says what each key means and where it appears).

`topology_metrics` takes the teacher's and the student's embeddings of the same batch (``[B, D_t]``, ``[B, D_s]``)
and returns a flat dict of floats (keys: `metric_keys`; NaN where a value is undefined), from the exact finite Rips
diagrams of each cloud. Bottleneck is gudhi's exact one; 1-Wasserstein is the exact optimal partial matching with
the L-infinity ground metric, as gudhi (and hera) define it, solved as an assignment problem (scipy). ``normalize``
adds every distance after dividing each cloud's diagram by its diameter (``diam``) or mean pairwise distance
(``mean``): invariant to scaling either cloud. A persistence-image MSE uses one fixed `PIParams` per dimension."""
import math
from typing import Dict, Mapping, Sequence, Tuple, Union

import numpy as np
import torch

from topkd_io import TopKDError

from .persistence import rips_diagrams
from .point_cloud_pi import finite_rows, persistence_images

ArrayLike = Union[np.ndarray, torch.Tensor]
NORMALIZATIONS = ("diam", "mean")


def _numpy64(x: ArrayLike, name: str = "features") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    out = np.asarray(x, dtype=np.float64)
    if not np.isfinite(out).all():
        raise TopKDError(f"{name} hold NaN or inf values")
    return out


def _check_cloud(x: np.ndarray, name: str) -> np.ndarray:
    if x.ndim != 2 or x.shape[0] < 2:
        raise TopKDError(f"{name} must be a [B, D] matrix with B >= 2 points, got shape {tuple(x.shape)}")
    return x


def cloud_diagrams(points: ArrayLike, dims: Sequence[int] = (0,)) -> Dict[int, np.ndarray]:
    """Finite Rips diagrams of one cloud ``[N, D]`` -> ``{k: [m, 2] float64 (birth, death)}`` per dimension."""
    x = _check_cloud(_numpy64(points, "points"), "points")
    out = rips_diagrams(x[None], dims=tuple(dims))
    return {k: finite_rows(out[k][0]) for k in dims}


def normalization_scale(points: ArrayLike, rule: str = "diam") -> float:
    """The scale a cloud ``[N, D]`` is divided by: its diameter (``diam``) or mean pairwise distance (``mean``); 1
    for a cloud of identical points (its diagrams are empty or all zero anyway)."""
    from scipy.spatial.distance import pdist

    if rule not in NORMALIZATIONS:
        raise TopKDError(f"unknown normalisation {rule!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    dist = pdist(_check_cloud(_numpy64(points, "points"), "points"))
    scale = float(dist.max() if rule == "diam" else dist.mean())
    return scale if scale > 0 else 1.0


def _diagram(dg) -> np.ndarray:
    dg = np.asarray(dg, dtype=np.float64)
    if dg.size == 0:
        return dg.reshape(0, 2)
    if dg.ndim != 2 or dg.shape[1] != 2:
        raise ValueError(f"a persistence diagram must be a [k, 2] array of (birth, death), got {dg.shape}")
    if not np.isfinite(dg).all():
        raise ValueError("diagram distances here take finite points only; drop the infinite bars first")
    return dg


def bottleneck(dg_a, dg_b) -> float:
    """Exact bottleneck distance (L-infinity ground metric) between two finite diagrams: gudhi's own routine."""
    import gudhi

    a, b = _diagram(dg_a), _diagram(dg_b)
    if not len(a) and not len(b):
        return 0.0
    return float(gudhi.bottleneck_distance(a, b, e=0))


def _to_diagonal(dg: np.ndarray, internal_p: float) -> np.ndarray:
    """L-p distance of each point to its nearest point on the diagonal: ``(d - b) * 2^(1/p - 1)``."""
    half = 0.5 if math.isinf(internal_p) else 2.0 ** (1.0 / internal_p - 1.0)
    return np.abs(dg[:, 1] - dg[:, 0]) * half


def wasserstein(dg_a, dg_b, order: float = 1.0, internal_p: float = math.inf) -> float:
    """Exact order-``order`` Wasserstein distance between two finite diagrams (points may be matched to the
    diagonal), ground metric L-``internal_p`` (gudhi's default L-infinity): a square assignment problem, ``n`` rows
    for A's points plus ``m`` diagonal copies, ``m`` columns for B's plus ``n`` diagonal copies (diagonal to
    diagonal costs 0)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    a, b = _diagram(dg_a), _diagram(dg_b)
    n, m = len(a), len(b)
    if n + m == 0:
        return 0.0
    cost = np.zeros((n + m, m + n))
    if n and m:
        cost[:n, :m] = cdist(a, b, "chebyshev") if math.isinf(internal_p) else cdist(a, b, "minkowski", p=internal_p)
    cost[:n, m:] = _to_diagonal(a, internal_p)[:, None]
    cost[n:, :m] = _to_diagonal(b, internal_p)[None, :]
    cost **= order
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum() ** (1.0 / order))


def wasserstein1(dg_a, dg_b) -> float:
    """Exact 1-Wasserstein distance, L-infinity ground metric (see `wasserstein`)."""
    return wasserstein(dg_a, dg_b, 1.0, math.inf)


def pi_mse(dg_a, dg_b, params) -> float:
    """Mean squared difference of two diagrams' persistence images under one `PIParams` (normalised)."""
    img = persistence_images([_diagram(dg_a), _diagram(dg_b)], params)
    return float(np.mean((img[0] - img[1]) ** 2))


def linear_cka(feat_a: ArrayLike, feat_b: ArrayLike) -> float:
    """Linear CKA of features ``[B, D_a]``, ``[B, D_b]`` of the same items (1 = same up to rotation and scale)."""
    x = _check_cloud(_numpy64(feat_a), "features")
    y = _check_cloud(_numpy64(feat_b), "features")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same items on both sides, got {x.shape[0]} and {y.shape[0]} rows")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denom) if denom > 0 else math.nan


def _by_dim(params, dims: Sequence[int]) -> Dict[int, object]:
    """``PIParams`` (taken for dimension 0, or its ``homology_dim``) or ``{dim: PIParams}`` -> dict."""
    if params is None:
        return {}
    if isinstance(params, Mapping):
        return {int(k): v for k, v in params.items() if int(k) in dims and v is not None}
    dim = params.homology_dim if params.homology_dim is not None else 0
    return {int(dim): params} if int(dim) in dims else {}


def _rules(normalize) -> Tuple[str, ...]:
    if not normalize:
        return ()
    rules = (normalize,) if isinstance(normalize, str) else tuple(normalize)
    for rule in rules:
        if rule not in NORMALIZATIONS:
            raise TopKDError(f"unknown normalisation {rule!r}; choose among: {', '.join(NORMALIZATIONS)}")
    return rules


def metric_keys(dims: Sequence[int] = (0,), normalize="diam", pi_dims: Sequence[int] = (0,),
                pi_dims_norm: Sequence[int] = ()) -> Tuple[str, ...]:
    """The keys `topology_metrics` returns for these settings, in its order."""
    keys = []
    rules = _rules(normalize)
    for k in dims:
        keys += [f"bottleneck_h{k}", f"wasserstein1_h{k}"]
        for rule in rules:
            keys += [f"bottleneck_h{k}_norm_{rule}", f"wasserstein1_h{k}_norm_{rule}"]
        if k in pi_dims:
            keys.append(f"pi_mse_h{k}")
        for rule in rules:
            if k in pi_dims_norm:
                keys.append(f"pi_mse_h{k}_norm_{rule}")
    return tuple(keys) + ("cka_linear",)


def topology_metrics(feat_t: ArrayLike, feat_s: ArrayLike, dims: Sequence[int] = (0,), pi_params=None,
                     normalize="diam", pi_params_norm=None) -> Dict[str, float]:
    """Distances between teacher features ``[B, D_t]`` and student features ``[B, D_s]`` of the same B items, each
    batch one point cloud -> the flat dict of the module docstring. dims: homology dimensions (0 and/or 1);
    pi_params: a `PIParams` (for dimension 0, or its ``homology_dim``) or ``{dim: PIParams}`` for the raw images;
    pi_params_norm: the same for the normalised diagrams' images (one rule: a single ``normalize``); normalize:
    ``"diam"``, ``"mean"``, a tuple of both, or None."""
    dims = tuple(int(k) for k in dims)  # checked by rips_diagrams
    x_t = _check_cloud(_numpy64(feat_t, "teacher features"), "teacher features")
    x_s = _check_cloud(_numpy64(feat_s, "student features"), "student features")
    if x_t.shape[0] != x_s.shape[0]:
        raise ValueError(f"teacher and student features must hold the same items, got {x_t.shape[0]} and "
                         f"{x_s.shape[0]} rows")
    rules = _rules(normalize)
    params, params_norm = _by_dim(pi_params, dims), _by_dim(pi_params_norm, dims)
    if params_norm and len(rules) != 1:
        raise ValueError("pi_params_norm needs exactly one normalisation rule (normalize='diam' or 'mean')")
    dg_t, dg_s = cloud_diagrams(x_t, dims), cloud_diagrams(x_s, dims)
    scales = {rule: (normalization_scale(x_t, rule), normalization_scale(x_s, rule)) for rule in rules}
    out: Dict[str, float] = {}
    for k in dims:
        out[f"bottleneck_h{k}"] = bottleneck(dg_t[k], dg_s[k])
        out[f"wasserstein1_h{k}"] = wasserstein1(dg_t[k], dg_s[k])
        normed = {}
        for rule, (c_t, c_s) in scales.items():
            normed[rule] = (dg_t[k] / c_t, dg_s[k] / c_s)
            out[f"bottleneck_h{k}_norm_{rule}"] = bottleneck(*normed[rule])
            out[f"wasserstein1_h{k}_norm_{rule}"] = wasserstein1(*normed[rule])
        if k in params:
            out[f"pi_mse_h{k}"] = pi_mse(dg_t[k], dg_s[k], params[k])
        if k in params_norm:
            out[f"pi_mse_h{k}_norm_{rules[0]}"] = pi_mse(*normed[rules[0]], params_norm[k])
    out["cka_linear"] = linear_cka(x_t, x_s)
    return out


def mean_metrics(per_batch: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """Mean of each key over batches, NaN entries left out (NaN when a key is NaN in every batch)."""
    if not per_batch:
        return {}
    out = {}
    for key in per_batch[0]:
        vals = [float(m[key]) for m in per_batch if key in m and math.isfinite(float(m[key]))]
        out[key] = float(np.mean(vals)) if vals else math.nan
    return out
