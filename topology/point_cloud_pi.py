"""Persistence images equal to ``gudhi.representations.PersistenceImage``, vectorized over batches.

gudhi's conventions, kept exactly: a point ``(birth, death)`` moves to ``(b, p) = (birth, death - birth)`` and adds
``w(b, p) * exp(-((b - x)^2 + (p - y)^2) / (2 s^2)) / (2 pi s^2)`` at every grid node, ``s`` the bandwidth (a
standard deviation); grid ``x = linspace(x0, x1, R0)`` (birth), ``y = linspace(y0, y1, R1)`` (persistence); the
image is ``[R1, R0]`` (rows persistence, columns birth) flattened in C order. Points with an infinite or NaN
coordinate are ignored (the official pipeline drops the infinite H0 bar). The TopKD rule fits `PIParams` once on a
set of diagrams (`PIParams.fit`); every image is then divided by ``params.normalizer`` (the set's global max)."""
import math
import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from topkd_io import TopKDError, write_yaml

from . import persistence

Diagrams = Union[Sequence[np.ndarray], np.ndarray]

# --- weights: (births, persistences, array module) -> weights, same shape; numpy and torch alike
WEIGHTS: Dict[str, Callable] = {
    "topkd": lambda b, p, xp: 10.0 * xp.tanh(p) + 10.0 * xp.log(100.0 * b + 1.0),  # checked against the official
    "linear": lambda b, p, xp: p * 1.0,  # persistence itself (TGD's weight up to a constant factor)
    "tanh": lambda b, p, xp: xp.tanh(p),
    "constant": lambda b, p, xp: xp.ones_like(p),  # gudhi's default weight
}


def get_weight(name: str) -> Callable:
    try:
        return WEIGHTS[name]
    except KeyError:
        raise TopKDError(f"unknown persistence-image weight {name!r}; choose one of: {', '.join(sorted(WEIGHTS))}"
                         ) from None


@dataclass
class PIParams:
    """Parameters of a persistence image. bandwidth: Gaussian std (diagram units); im_range: ``(x0, x1, y0, y1)``, the
    birth then the persistence range; resolution: ``(R0, R1)`` grid nodes along birth, persistence; weight: a name in
    ``WEIGHTS``; normalizer: what images are divided by (TopKD: the max over the fitting set's images)."""

    bandwidth: float
    im_range: Tuple[float, float, float, float]
    resolution: Tuple[int, int] = (20, 20)
    weight: str = "topkd"
    normalizer: float = 1.0
    homology_dim: Optional[int] = None

    def __post_init__(self) -> None:
        self.bandwidth = float(self.bandwidth)
        self.im_range = tuple(float(v) for v in self.im_range)
        self.resolution = tuple(int(v) for v in self.resolution)
        self.normalizer = float(self.normalizer)
        if not (math.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise TopKDError(f"bandwidth must be a positive finite number, got {self.bandwidth}")
        if len(self.im_range) != 4 or not all(math.isfinite(v) for v in self.im_range):
            raise TopKDError(f"im_range must be 4 finite numbers (x0, x1, y0, y1), got {self.im_range}")
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            raise TopKDError(f"resolution must be two positive ints, got {self.resolution}")
        if not (math.isfinite(self.normalizer) and self.normalizer > 0):
            raise TopKDError(f"normalizer must be a positive finite number, got {self.normalizer}")
        get_weight(self.weight)

    @property
    def num_pixels(self) -> int:
        return self.resolution[0] * self.resolution[1]

    def grids(self) -> Tuple[np.ndarray, np.ndarray]:
        """Grid nodes: (births ``[R0]``, persistences ``[R1]``), float64, as gudhi's linspace."""
        x0, x1, y0, y1 = self.im_range
        return np.linspace(x0, x1, self.resolution[0]), np.linspace(y0, y1, self.resolution[1])

    @classmethod
    def fit(cls, diagrams: Diagrams, resolution: Tuple[int, int] = (20, 20), weight: str = "topkd",
            quantile: float = 0.2, num_points: int = 200, bandwidth: Optional[float] = None,
            homology_dim: Optional[int] = None) -> "PIParams":
        """The TopKD parameters of a set of ``[k, 2]`` (birth, death) diagrams, finite points only: bandwidth (unless
        given) the ``quantile`` of the non-zero pairwise distances among the first ``num_points`` stacked (birth,
        persistence) points; im_range the min/max birth and persistence; normalizer the max over the set's images."""
        bp = _stack_birth_persistence(diagrams)
        if bp.shape[0] == 0:
            raise TopKDError("cannot fit persistence-image parameters: the diagrams hold no finite point (empty set, "
                             "or only infinite bars)")
        if bandwidth is None:
            bandwidth = _quantile_bandwidth(bp[:num_points], quantile)
        im_range = (bp[:, 0].min(), bp[:, 0].max(), bp[:, 1].min(), bp[:, 1].max())
        params = cls(bandwidth, im_range, resolution, weight, 1.0, homology_dim)
        peak = float(persistence_images(diagrams, params, normalize=False).max())
        if not peak > 0:
            raise TopKDError("all persistence images of the set are zero: cannot normalize them; "
                             "check the diagrams or pass a larger bandwidth")
        params.normalizer = peak
        return params

    def to_dict(self) -> dict:
        d = asdict(self)
        d["im_range"] = list(self.im_range)
        d["resolution"] = list(self.resolution)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PIParams":
        if not isinstance(d, dict):
            raise TopKDError(f"persistence-image parameters must be a mapping, got {type(d).__name__}")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        missing = {"bandwidth", "im_range"} - set(d)
        if unknown or missing:
            raise TopKDError(f"bad persistence-image parameters: unknown keys {sorted(unknown)}, missing keys "
                             f"{sorted(missing)}; expected keys among {sorted(allowed)}")
        return cls(**d)

    def save_yaml(self, path: Union[str, os.PathLike]) -> None:
        """Write the parameters as YAML, atomically (`PIParams.from_dict(topkd_io.read_yaml(path))` reads them)."""
        write_yaml(path, self.to_dict())


def finite_rows(dg: np.ndarray) -> np.ndarray:
    """The finite (birth, death) rows of a ``[k, 2]`` diagram, float64."""
    dg = np.asarray(dg, dtype=np.float64)
    if dg.size == 0:
        return dg.reshape(0, 2)
    if dg.ndim != 2 or dg.shape[1] != 2:
        raise ValueError(f"a persistence diagram must be a [k, 2] array of (birth, death), got {dg.shape}")
    return dg[np.isfinite(dg).all(axis=1)]


def _stack_birth_persistence(diagrams: Diagrams) -> np.ndarray:
    """All finite points of all diagrams, stacked in order, as ``[M, 2]`` (birth, persistence)."""
    rows = [finite_rows(dg) for dg in diagrams]
    if not rows:
        return np.zeros((0, 2))
    bp = np.concatenate(rows, axis=0)
    bp[:, 1] -= bp[:, 0]
    return bp


def _quantile_bandwidth(points: np.ndarray, quantile: float) -> float:
    """``quantile`` of the non-zero pairwise Euclidean distances among ``points`` ``[m, 2]``."""
    from scipy.spatial.distance import pdist

    dist = pdist(points)
    dist = dist[dist > 0]
    if dist.size == 0:
        raise TopKDError("cannot fit a bandwidth: the first diagram points are all identical; "
                         "pass bandwidth= explicitly")
    return float(np.quantile(dist, quantile))


def _pad(diagrams: Diagrams) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """List of diagrams -> padded births, persistences ``[n, K]`` and a 0/1 mask ``[n, K]``."""
    rows = [finite_rows(dg) for dg in diagrams]
    n = len(rows)
    counts = np.array([r.shape[0] for r in rows], dtype=np.int64)
    k = int(counts.max()) if n else 0
    births = np.zeros((n, k))
    pers = np.zeros((n, k))
    mask = np.arange(k)[None, :] < counts[:, None]
    if k:
        stacked = np.concatenate(rows, axis=0)
        births[mask] = stacked[:, 0]
        pers[mask] = stacked[:, 1] - stacked[:, 0]
    return births, pers, mask.astype(np.float64)


def _images(births, pers, mask, params: PIParams, xp, grid_x, grid_y, zero_births: bool = False):
    """The kernel (``xp``: torch): births, pers, mask ``[n, K]`` -> ``[n, R1 * R0]``. The Gaussian is separable:
    image[y, x] = sum_k w_k g(p_k - y) g(b_k - x) / (2 pi s^2); with ``zero_births`` (H0) g(b_k - x) = g(x), so the
    image is the profile sum_k w_k g(p_k - y) times g(x): no ``[n, K, R0]`` Gaussians, no matmul."""
    s2 = 2.0 * params.bandwidth**2
    w = get_weight(params.weight)(births, pers, xp) * mask
    gy = xp.exp(-((pers[:, :, None] - grid_y) ** 2) / s2)  # [n, K, R1]
    if zero_births:
        profile = (w[:, :, None] * gy).sum(1)  # [n, R1]
        img = profile[:, :, None] * (xp.exp(-(grid_x**2) / s2) / (math.pi * s2))  # [n, R1, R0]
    else:
        gx = xp.exp(-((births[:, :, None] - grid_x) ** 2) / s2)  # [n, K, R0]
        wy = (w[:, :, None] * gy).swapaxes(1, 2)  # [n, R1, K]
        img = xp.matmul(wy, gx) / (math.pi * s2)  # [n, R1, R0]: rows persistence, columns birth
    return img.reshape(img.shape[0], -1)


_MIN_POOLED_IMAGES = 64  # fewest diagrams per pool worker when imaging a set


def persistence_images(diagrams: Diagrams, params: PIParams, normalize: bool = True, chunk: int = 512) -> np.ndarray:
    """Persistence images of a list of ``[k, 2]`` (birth, death) diagrams -> ``[n, R0 * R1]`` float64, equal to
    ``gudhi.representations.PersistenceImage`` to float rounding, divided by ``params.normalizer`` if ``normalize``."""
    if isinstance(diagrams, np.ndarray) and diagrams.ndim == 2:
        raise ValueError("persistence_images expects a list of diagrams; wrap a single one: [diagram]")
    diagrams = list(diagrams)
    # torch on the CPU in float64: its exp is about twice numpy's speed here (images equal to ~1e-15 relative);
    # parts of the batch run on our own single-threaded workers (`topology.persistence.run_parts`)
    grid_x, grid_y = (torch.from_numpy(g) for g in params.grids())
    out = np.zeros((len(diagrams), params.num_pixels))

    def part(s: int, e: int) -> None:
        births, pers, mask = (torch.from_numpy(a) for a in _pad(diagrams[s:e]))
        if births.shape[1]:
            zero = not bool(births.any())  # H0 diagrams: the separable shortcut
            out[s:e] = _images(births, pers, mask, params, torch, grid_x, grid_y, zero).numpy()

    workers = persistence.worker_count(len(diagrams), _MIN_POOLED_IMAGES)
    persistence.run_parts(part, persistence.split(len(diagrams), workers, chunk), workers)
    return out / params.normalizer if normalize else out


def persistence_images_torch(births: torch.Tensor, pers: torch.Tensor, params: PIParams,
                             mask: Optional[torch.Tensor] = None, normalize: bool = True) -> torch.Tensor:
    """Differentiable persistence images of padded diagrams: births, pers ``[B, K]`` (pers = death - birth), mask
    ``[B, K]`` (1 = point, 0 = padding; default all points) -> ``[B, R0 * R1]``, on the inputs' device and dtype."""
    if births.shape != pers.shape or births.dim() != 2:
        raise ValueError(f"births and persistences must both be [B, K], got {tuple(births.shape)} "
                         f"and {tuple(pers.shape)}")
    if mask is None:
        mask = torch.ones_like(pers)
    else:
        if mask.shape != pers.shape:
            raise ValueError(f"mask must be [B, K] like the points, got {tuple(mask.shape)}")
        mask = mask.to(pers.dtype)
    gx, gy = (torch.as_tensor(g, dtype=pers.dtype, device=pers.device) for g in params.grids())
    img = _images(births, pers, mask, params, torch, gx, gy)
    return img / params.normalizer if normalize else img


def h0_images_torch(deaths: torch.Tensor, params: PIParams, normalize: bool = True) -> torch.Tensor:
    """Differentiable H0 persistence images: deaths ``[B, K]`` (births 0) -> ``[B, R0 * R1]``; infinite deaths and
    zero-length bars are masked out (as gudhi drops them): `h0_deaths_torch`'s output goes in as it is."""
    keep = torch.isfinite(deaths) & (deaths > 0)
    pers = torch.where(keep, deaths, torch.zeros_like(deaths))
    gx, gy = (torch.as_tensor(g, dtype=pers.dtype, device=pers.device) for g in params.grids())
    img = _images(torch.zeros_like(pers), pers, keep.to(pers.dtype), params, torch, gx, gy, zero_births=True)
    return img / params.normalizer if normalize else img


def h1_images_torch(births: torch.Tensor, deaths: torch.Tensor, mask: torch.Tensor, params: PIParams,
                    normalize: bool = True) -> torch.Tensor:
    """Differentiable H1 persistence images: births, deaths, mask ``[B, K]`` -> ``[B, R0 * R1]``."""
    return persistence_images_torch(births, deaths - births, params, mask=mask, normalize=normalize)
