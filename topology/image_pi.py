"""Persistence images of images, as in TGD (Jeon et al., "Leveraging Topological Guidance for Improved Knowledge
Distillation", GRaM 2024), equal by default to what TGD's official data loader feeds its PI teacher.

Each channel of an image `[C, H, W]` with values in [0, 1] is read as a 1-D signal twice: row by row (C-order
flattening) and column by column (flattening of its transpose). The H0 diagram of the sublevel-set (lower-star)
filtration of each signal on the path graph is computed exactly by a union-find over the values sorted ascending,
run for many signals at once. Finite points with persistence > `min_persistence` and > `min_lifetime` become an
R x R image in (birth, persistence) coordinates, weighted by persistence / (the diagram's largest persistence).
Every channel is then divided by its own maximum (an empty channel stays zero) and, by default, quantised to 8 bits
as the official PNG files are (``floor(255 * x) / 255``). Output: `[2C, R, R]`, rows of channels 0..C-1 then their
columns, the order the official loader sees (its cv2 writes and PIL reads cancel their channel swaps).

Layouts (`PI_LAYOUTS`): ``"persim"`` (default; persim 0.3's ``PersImage`` of the official notebook) integrates the
Gaussian (std `bandwidth`) over each pixel: pixel lower edges ``linspace(lo, hi, R)`` per axis, pixels
``(hi - lo) / R`` wide (persim's slightly overlapping grid), row ``r`` = persistence pixel ``R - 1 - r``, column
``c`` = birth pixel ``c``; its signals are first rounded to float32, as the official route's ripser stores them.
``"gudhi"`` (an option) samples the Gaussian density at the nodes ``linspace(lo, hi, R)``, equal to
``gudhi.representations.PersistenceImage``: row ``i`` = persistence node ``i``, column ``j`` = birth node ``j``."""
import contextlib
from dataclasses import asdict, dataclass, fields
from typing import Dict, List, Tuple

import numpy as np
from scipy.special import ndtr

from topkd_io import TopKDError


@dataclass(frozen=True)
class ImagePIParams:
    """Parameters of the TGD image persistence images (defaults: the paper's). bandwidth: Gaussian std in pixel-value
    units; im_range: (birth min, birth max, persistence min, persistence max) of the grid; a finite point is kept when
    its persistence is > both min_persistence and min_lifetime; normalize: divide each channel by its maximum."""

    resolution: int = 50
    bandwidth: float = 0.01
    im_range: Tuple[float, float, float, float] = (0.0, 0.3, 0.0, 0.3)
    min_persistence: float = 1e-3
    min_lifetime: float = 0.02
    normalize: bool = True
    layout: str = "persim"
    quantize: str = "uint8"

    def __post_init__(self):
        if self.layout not in PI_LAYOUTS:
            raise TopKDError(f"unknown image-PI layout {self.layout!r}; choose one of: {', '.join(PI_LAYOUTS)}")
        if self.quantize not in QUANTIZATIONS:
            raise TopKDError(f"unknown image-PI quantize {self.quantize!r}; choose one of: {', '.join(QUANTIZATIONS)}")
        if int(self.resolution) < 1:
            raise TopKDError(f"resolution must be >= 1, got {self.resolution}")
        if not float(self.bandwidth) > 0:
            raise TopKDError(f"bandwidth must be > 0, got {self.bandwidth}")
        rng = tuple(float(v) for v in self.im_range)
        if len(rng) != 4 or not (rng[0] < rng[1] and rng[2] < rng[3]):
            raise TopKDError(f"im_range must be (bmin, bmax, pmin, pmax) with min < max, got {self.im_range}")
        object.__setattr__(self, "im_range", rng)
        for name, kind in (("resolution", int), ("bandwidth", float), ("min_persistence", float),
                           ("min_lifetime", float), ("normalize", bool)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def to_dict(self) -> Dict:
        out = asdict(self)
        out["im_range"] = list(self.im_range)
        return out

    @classmethod
    def from_dict(cls, data: Dict) -> "ImagePIParams":
        """Inverse of `to_dict`; every field must be there."""
        known = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - known), sorted(known - set(data))
        if unknown:
            raise TopKDError(f"unknown image-PI parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        if missing:
            raise TopKDError(f"image-PI parameters {', '.join(missing)} missing (a cache of an older version?); "
                             f"regenerate it with generate_image_PI.py")
        return cls(**data)


def lower_star_h0_batched(signals: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Finite H0 pairs of the lower-star filtration of each row of `signals` `[B, n]` on the path graph -> `(births,
    deaths)`, float64 `[B, n]`: entry `k` belongs to the k-th vertex in ascending (stable) order, `deaths` are the
    sorted values, `births` is NaN where that vertex killed nothing. Components are intervals that keep their birth at
    both ends; a vertex joining two kills the younger (elder rule). The essential class is not included."""
    x = np.asarray(signals, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"signals must be a 2-D array [B, n] with n >= 1, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("signals contain NaN or infinite values; pass finite filtration values")
    b, n = x.shape
    order = np.argsort(x, axis=1, kind="stable")
    values = np.take_along_axis(x, order, axis=1)
    # Flat layout, one never-active sentinel slot on each side of every signal. Only slots next to the
    # entering vertex are read, and such a slot is either inactive or the matching end of an interval:
    #   left_end_of[j]  (j a right end) -> the interval's left end; inactive j holds j + 1
    #   right_end_of[j] (j a left end)  -> the interval's right end; inactive j holds j - 1
    #   birth[j]        (j an end)      -> the interval's birth; inactive j holds +inf
    # so "no neighbor" needs no branch: it reads the entering slot itself and an infinite birth.
    width = n + 2
    size = b * width
    itype = np.int32 if size + 1 < 2 ** 31 else np.int64  # narrower indices: less memory traffic
    # column-major over (vertex order, signal): step k reads one contiguous row
    flat_pos = np.ascontiguousarray((order + 1 + (np.arange(b) * width)[:, None]).T.astype(itype))
    values_t = np.ascontiguousarray(values.T)
    left_end_of = np.arange(1, size + 1, dtype=itype)
    right_end_of = np.arange(-1, size - 1, dtype=itype)
    birth = np.full(size, np.inf)
    births = np.empty((n, b))
    for k in range(n):
        pos = flat_pos[k]
        b_left = birth[pos - 1]
        b_right = birth[pos + 1]
        left_end = left_end_of[pos - 1]
        right_end = right_end_of[pos + 1]
        np.maximum(b_left, b_right, out=births[k])  # finite only when both neighbors are active
        merged = np.minimum(np.minimum(b_left, b_right), values_t[k])
        right_end_of[left_end] = right_end
        left_end_of[right_end] = left_end
        birth[left_end] = merged
        birth[right_end] = merged
    births = births.T.copy()
    births[np.isinf(births)] = np.nan
    return births, values


def lower_star_h0(signal: np.ndarray, keep_infinite: bool = False) -> np.ndarray:
    """H0 diagram `[k, 2]` of one 1-D signal `[n]`, zero-length pairs dropped (`keep_infinite`: `(min, inf)` last)."""
    x = np.asarray(signal, dtype=np.float64).reshape(1, -1)
    births, deaths = lower_star_h0_batched(x)
    keep = ~np.isnan(births[0]) & (deaths[0] > births[0])
    diagram = np.stack([births[0][keep], deaths[0][keep]], axis=1)
    if keep_infinite:
        diagram = np.concatenate([diagram, [[x.min(), np.inf]]], axis=0)
    return diagram


def filter_diagram_points(births: np.ndarray, deaths: np.ndarray, params: ImagePIParams) -> np.ndarray:
    """Mask `[B, n]` of the finite points kept by TGD's filter (persistence > both thresholds)."""
    with np.errstate(invalid="ignore"):
        pers = deaths - births
        return (~np.isnan(births)) & (pers > params.min_persistence) & (pers > params.min_lifetime)


def diagram_images(births: np.ndarray, deaths: np.ndarray, keep: np.ndarray, params: ImagePIParams) -> np.ndarray:
    """Persistence images `[B, R, R]` float64 of B padded diagrams (the points where `keep` `[B, m]`), in
    `params.layout`, weight w_k = pers_k / the diagram's largest pers; not normalized or quantised."""
    births = np.asarray(births, dtype=np.float64)
    pers = np.asarray(deaths, dtype=np.float64) - births
    keep = np.asarray(keep, dtype=bool)
    bsz = births.shape[0]
    res = params.resolution
    counts = keep.sum(axis=1)
    m = int(counts.max()) if bsz else 0
    if m == 0:
        return np.zeros((bsz, res, res))
    # move the kept points to the front of each row (in order; no sort: each kept point's slot is the
    # count of kept points before it), padding the rows to the longest diagram with zeros
    rows, cols = np.nonzero(keep)
    slots = np.cumsum(keep, axis=1)[rows, cols] - 1
    b = np.zeros((bsz, m))
    p = np.zeros((bsz, m))
    b[rows, slots] = births[rows, cols]
    p[rows, slots] = pers[rows, cols]
    top = p.max(axis=1, keepdims=True)
    w = np.divide(p, top, out=np.zeros_like(p), where=top > 0)  # padding: weight 0
    gx, gy = PI_LAYOUTS[params.layout](b, p, params)  # [B, m, R] over birth, [B, m, R] over image rows
    gy *= w[:, :, None]
    return np.matmul(gy.transpose(0, 2, 1), gx)  # [B, R(rows), R(birth)]


def _persim_factors(b: np.ndarray, p: np.ndarray, params: ImagePIParams) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-integrated Gaussian factors: birth `[B, m, R]` (column c = pixel c), persistence (row r = pixel R-1-r)."""
    res, s = params.resolution, params.bandwidth
    b_lo, b_hi, p_lo, p_hi = params.im_range
    bx = np.linspace(b_lo, b_hi, res)
    py = np.linspace(p_lo, p_hi, res)[::-1]  # persistence grows upward
    gx = _cdf_differences(b, bx, (b_hi - b_lo) / res, s)
    gy = _cdf_differences(p, py, (p_hi - p_lo) / res, s)
    return gx, gy


def _gudhi_factors(b: np.ndarray, p: np.ndarray, params: ImagePIParams) -> Tuple[np.ndarray, np.ndarray]:
    """Gaussian density at the grid nodes, normalised by 1 / (2 pi s^2) as gudhi's: birth, persistence `[B, m, R]`."""
    res = params.resolution
    s2 = 2.0 * params.bandwidth ** 2
    bx = np.linspace(params.im_range[0], params.im_range[1], res)
    py = np.linspace(params.im_range[2], params.im_range[3], res)
    gx = _table_lookup(b, lambda lv: np.exp(-np.square(bx[None, :] - lv[:, None]) / s2))
    gy = _table_lookup(p, lambda lv: np.exp(-np.square(py[None, :] - lv[:, None]) / s2))
    gy *= 1.0 / (np.pi * s2)
    return gx, gy


#: layout name -> function(births [B, m], persistences [B, m], params) -> (birth factor [B, m, R],
#: row factor [B, m, R]); the image is sum_k w_k row[k, r] birth[k, c].
PI_LAYOUTS = {"persim": _persim_factors, "gudhi": _gudhi_factors}
QUANTIZATIONS = ("uint8", "none")


def _cdf_differences(centers: np.ndarray, lower: np.ndarray, width: float, s: float) -> np.ndarray:
    """Phi((lower + width - c) / s) - Phi((lower - c) / s) for every center `[B, m]` -> `[B, m, R]`."""
    edges = np.concatenate([lower + width, lower])
    n = len(lower)

    def table(levels):
        cdf = ndtr((edges[None, :] - levels[:, None]) / s)
        return cdf[:, :n] - cdf[:, n:]

    return _table_lookup(centers, table)


def _table_lookup(centers: np.ndarray, table_of) -> np.ndarray:
    """`table_of(levels [L]) -> [L, R]` evaluated once per distinct center and gathered -> `[B, m, R]`: 8-bit images
    have few distinct births and persistences: the special functions run on a small table (5-10x faster, same bits)."""
    levels, inverse = np.unique(centers, return_inverse=True)
    return table_of(levels)[inverse.reshape(centers.shape)]


def to_uint8(pis: np.ndarray) -> np.ndarray:
    """PIs in [0, 1] -> uint8 ``floor(255 * x)``, the notebook's ``(img * 255).astype('uint8')``; values within
    1e-4 / 255 of a level k / 255 map to k (PIs made with ``quantize="uint8"`` come back exactly)."""
    x = np.asarray(pis, dtype=np.float64) * 255.0
    level = np.rint(x)
    return np.where(np.abs(x - level) < 1e-4, level, np.floor(x)).clip(0, 255).astype(np.uint8)


def image_signals(images: np.ndarray) -> np.ndarray:
    """1-D signals `[N, 2C, H*W]` of images `[N, C, H, W]`: row-major per channel, then column-major."""
    x = np.asarray(images)
    n, c, h, w = x.shape
    rows = x.reshape(n, c, h * w)
    cols = x.transpose(0, 1, 3, 2).reshape(n, c, h * w)
    return np.concatenate([rows, cols], axis=1)


def _signals(images, params: ImagePIParams) -> Tuple[np.ndarray, int]:
    """(1-D signals ``[N * 2C, H*W]`` float64, N) of images ``[N, C, H, W]`` or ``[C, H, W]`` in [0, 1]."""
    if hasattr(images, "detach"):  # torch tensor
        images = images.detach().cpu().numpy()
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise TopKDError(f"images must be [C, H, W] or [N, C, H, W], got shape {x.shape}")
    if x.size and (not np.isfinite(x).all() or x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise TopKDError("image values must lie in [0, 1]: compute image PIs from un-normalized images (ToTensor only)")
    signals = image_signals(x).reshape(-1, x.shape[2] * x.shape[3])
    if params.layout == "persim":  # the official route's ripser holds filtration values as float32
        signals = signals.astype(np.float32).astype(np.float64)
    return signals, len(x)


_PI_BLOCK = 192  # diagrams per persistence-image block (bounds the [block, points, R] Gaussian tables)


def image_pis(images, params: ImagePIParams = ImagePIParams(), chunk: int = 1536) -> np.ndarray:
    """TGD persistence images of images `[N, C, H, W]` (or one `[C, H, W]`) in [0, 1] -> float32 `[N, 2C, R, R]`;
    `chunk`: 1-D signals through the union-find at once (memory ~ chunk * H*W * 40 bytes)."""
    signals, n = _signals(images, params)
    out = np.empty((len(signals), params.resolution, params.resolution), dtype=np.float32)
    with _single_threaded_blas():
        for start in range(0, len(signals), max(1, int(chunk))):
            births, deaths = lower_star_h0_batched(signals[start:start + chunk])
            keep = filter_diagram_points(births, deaths, params)
            for sub in range(0, len(births), _PI_BLOCK):
                sl = slice(sub, sub + _PI_BLOCK)
                img = diagram_images(births[sl], deaths[sl], keep[sl], params)
                if params.normalize:
                    top = img.reshape(img.shape[0], -1).max(axis=1)[:, None, None]
                    img = np.divide(img, top, out=np.zeros_like(img), where=top > 0)
                if params.quantize == "uint8":
                    img = np.floor(img * 255.0) / 255.0
                out[start + sub:start + sub + len(img)] = img
    return out.reshape(n, -1, params.resolution, params.resolution)


def _single_threaded_blas():
    """The PI step is many tiny matrix products: BLAS threads only contend (measured 2-13x slower with OpenBLAS
    threads on a busy 2-core machine). Parallelism comes from worker processes instead."""
    try:
        from threadpoolctl import threadpool_limits  # optional (scikit-learn brings it)
    except ImportError:  # without it, run as configured
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def image_pi(image, params: ImagePIParams = ImagePIParams()) -> np.ndarray:
    """TGD persistence image `[2C, R, R]` float32 of one image `[C, H, W]` in [0, 1]."""
    return image_pis(image, params)[0]


def diagrams_of_image(image, params: ImagePIParams = ImagePIParams()) -> List[np.ndarray]:
    """The filtered diagrams (birth, death) `[k, 2]` behind each output channel of `image_pi(image)`."""
    births, deaths = lower_star_h0_batched(_signals(image, params)[0])
    keep = filter_diagram_points(births, deaths, params)
    return [np.stack([b[k], d[k]], axis=1) for b, d, k in zip(births, deaths, keep)]
