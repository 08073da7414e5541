"""Vietoris-Rips persistence diagrams of batches of point clouds. H0 is exact without a complex: its finite deaths
are the edge lengths of a Euclidean minimum spanning tree (every birth is 0), found by Prim's algorithm on a whole
chunk of clouds at once (one vectorized argmin per step) in float64 on the input's device. H1 goes through gudhi.

Conventions (those of gudhi's ``SimplexTree.persistence_intervals_in_dimension``): a diagram is a ``[k, 2]``
float64 array of ``(birth, death)`` rows; H0 rows are sorted by ascending death, the infinite bar ``(0, inf)`` last
(only with ``keep_infinite=True``); gudhi drops zero-length bars (duplicate points give H0 deaths equal to 0), and
``drop_zero=True`` (default) does the same (they add nothing to a persistence image); H1 rows are sorted by
ascending death, ties by ascending birth (``h1_backend="simplex_tree"``: gudhi's own tie order, slow).

On the CPU a batch is cut into parts, each run by one single-threaded worker of our own pool (`run_parts`): torch's
intra-op threads meet at a barrier after every small operation of these kernels, and beside other busy processes one
descheduled thread stalls them all (on 2 busy cores: 0.3-0.7x gudhi's speed, against 6-8x with one thread per part).
scipy and gudhi are imported on first use (0.6-0.8 s of start-up)."""
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Sequence, Tuple, TypeVar, Union

import numpy as np
import torch

from topkd_io import TopKDError

ArrayLike = Union[np.ndarray, torch.Tensor]

SUPPORTED_DIMS = (0, 1)

# Bytes of float64 scratch per chunk of clouds in Prim's loop: larger chunks amortize its per-step cost; on the
# CPU, larger ones spill the caches.
_CHUNK_BYTES = {"cpu": 128 * 2**20, "cuda": 2 * 2**30}
_DEFAULT_CHUNK_BYTES = 256 * 2**20
# Bytes of the reused float64 buffer of centred points the Gram matrices are computed through, a few clouds at a
# time: wide clouds (D = 2048) never shrink the Prim chunk, and no chunk-sized float64 copy of the points is made.
_GRAM_BYTES = {"cpu": 8 * 2**20, "cuda": 512 * 2**20}


# ----------------------------------------------------------------------------- our own thread pool
T = TypeVar("T")
_POOL: "ThreadPoolExecutor | None" = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < size:
            old, _POOL_SIZE = _POOL, size
            # one torch thread per worker (OpenMP's thread count is per thread: the callers keep theirs)
            _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="topology",
                                       initializer=lambda: torch.set_num_threads(1))
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


def worker_count(items: int, min_items: int) -> int:
    """Workers for ``items`` units of work: the caller's torch thread count, at most one per ``min_items``."""
    return max(1, min(torch.get_num_threads(), items // max(1, min_items)))


def split(n: int, parts: int, max_size: int | None = None) -> List[Tuple[int, int]]:
    """``[start, stop)`` ranges covering ``range(n)``: one part: runs of ``max_size`` (the last one shorter);
    several: at least ``parts`` ranges of near-equal length, none longer than ``max_size``."""
    if n <= 0:
        return []
    if parts <= 1:
        size = max_size or n
        return [(s, min(n, s + size)) for s in range(0, n, size)]
    size = math.ceil(n / max(parts, math.ceil(n / max_size) if max_size else 1))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def run_parts(fn: Callable[..., T], parts: Sequence[tuple], workers: int) -> List[T]:
    """``[fn(*p) for p in parts]``, on ``workers`` single-threaded pool threads when ``workers > 1``."""
    if workers <= 1 or len(parts) <= 1:
        return [fn(*p) for p in parts]
    caller = torch.get_num_threads()
    try:
        futures = [_pool(workers).submit(fn, *p) for p in parts]
        return [f.result() for f in futures]
    finally:
        # a worker's set_num_threads(1) also sets torch's process-wide default for threads it starts later;
        # restore the caller's value there (the caller's own count never changed)
        torch.set_num_threads(caller)


# ----------------------------------------------------------------------------- validation
def _check_shape(points: ArrayLike) -> None:
    shape = tuple(points.shape)
    if len(shape) != 3:
        raise TopKDError(f"expected a batch of point clouds [B, N, D], got shape {shape}; add a batch axis "
                         f"(points[None]) for a single cloud")
    if shape[1] < 2:
        raise TopKDError(f"each point cloud needs at least 2 points, got N={shape[1]} (shape {shape})")
    if shape[2] < 1:
        raise TopKDError(f"points need at least one coordinate, got D={shape[2]} (shape {shape})")


def _raise_non_finite(bad_idx: Sequence[int]) -> None:
    shown = ", ".join(str(i) for i in bad_idx[:5]) + (" ..." if len(bad_idx) > 5 else "")
    raise TopKDError(f"point cloud(s) {shown} contain NaN or inf values; clean or drop them first")


def _check_finite(points: ArrayLike, first: int = 0) -> None:
    """`TopKDError` naming the clouds of ``[B, N, D]`` that hold NaN or inf (indices + ``first``)."""
    finite = (torch.isfinite(points).flatten(1).all(1).cpu().numpy() if isinstance(points, torch.Tensor)
              else np.isfinite(points).reshape(len(points), -1).all(axis=1))
    if not finite.all():
        _raise_non_finite([first + i for i in np.flatnonzero(~finite).tolist()])


# ----------------------------------------------------------------------------- batched Prim
# Gram-form squared distances below this fraction of the points' squared norms (after centring) are recomputed
# directly: there the cancellation error of the Gram form would show.
_RECOMPUTE_BELOW = 1e-2


def _gram_distances(x: torch.Tensor, out: torch.Tensor | None = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``[C, N, D]`` centred float64 clouds -> (``[C, N, N]`` squared distances, clamped; ``[C, N]`` norms)."""
    gram = torch.bmm(x, x.transpose(1, 2), out=out)
    sq = torch.diagonal(gram, dim1=1, dim2=2).clone()
    d2 = gram.mul_(-2.0).add_(sq.unsqueeze(2)).add_(sq.unsqueeze(1))
    return d2.clamp_(min=0.0), sq


def _prim(d2: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Prim's algorithm on every cloud of a chunk at once: squared distances ``[C, N, N]`` -> (edges ``[C, N-1, 2]``
    int64 (u, v) in the order Prim adds them, their squared lengths ``[C, N-1]`` read from d2)."""
    c, n, _ = d2.shape
    dev = d2.device
    inf = float("inf")
    base = torch.arange(c, device=dev) * n
    flat = d2.view(c * n, n)  # row r*n + j: cloud r's squared distances from vertex j
    # 0 for vertices outside the tree, +inf inside: added to candidate distances so that tree
    # vertices are never updated, and kept in `best` so that they are never picked again.
    blocked = torch.zeros(c, n, dtype=d2.dtype, device=dev)
    blocked[:, 0] = inf
    best = d2[:, 0, :] + blocked  # squared distance of each outside vertex to the tree
    parent = torch.zeros(c, n, dtype=torch.long, device=dev)
    us, vs, ws = [], [], []
    for _ in range(n - 1):
        w, j = best.min(dim=1, keepdim=True)  # [C, 1] next vertex of each tree, its distance
        us.append(parent.gather(1, j))
        vs.append(j)
        ws.append(w)
        blocked.scatter_(1, j, inf)
        cand = flat.index_select(0, base + j.squeeze(1)).add_(blocked)  # [C, N] from the new vertex
        closer = cand < best
        best = torch.where(closer, cand, best)
        best.scatter_(1, j, inf)
        parent = torch.where(closer, j, parent)
    edges = torch.stack([torch.cat(us, dim=1), torch.cat(vs, dim=1)], dim=-1)
    return edges, torch.cat(ws, dim=1)


def _chunk_size(n: int, device: torch.device) -> int:
    """Clouds per Prim chunk: its ``[C, N, N]`` float64 scratch stays near ``_CHUNK_BYTES`` (D does not matter)."""
    per_cloud = 8 * 3 * n * n
    return max(1, _CHUNK_BYTES.get(device.type, _DEFAULT_CHUNK_BYTES) // per_cloud)


def _as_tensor(points: ArrayLike) -> torch.Tensor:
    """Tensor sharing memory with ``points`` when possible (numpy -> CPU tensor, no dtype change)."""
    if isinstance(points, torch.Tensor):
        return points
    arr = np.asarray(points)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _centred64(part: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``part`` ``[C, N, D]`` moved to its centroid, in float64, into ``out`` (a ``copy_`` cast: several times faster
    than a mixed-dtype subtraction). Centring keeps the Gram form accurate when clouds share a large offset."""
    if not part.is_floating_point():
        part = part.to(torch.float64)
    mean = part.mean(dim=1, keepdim=True)
    if part.dtype == torch.float64:
        return torch.sub(part, mean, out=out)
    return out.copy_(part).sub_(mean.to(torch.float64))


def _chunk_tree(chunk: torch.Tensor, first: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """MST of each cloud of a chunk ``[C, N, D]``, chosen in float64 -> (edges ``[C, N-1, 2]``, float64 lengths
    ``[C, N-1]``, accurate to ~1e-13 relative: short edges, where the Gram form cancels, are recomputed)."""
    c, n, d = chunk.shape
    dev = chunk.device
    step = max(1, _GRAM_BYTES.get(dev.type, _DEFAULT_CHUNK_BYTES) // (8 * n * d))
    with torch.no_grad():
        chunk = chunk.detach()
        d2 = torch.empty(c, n, n, dtype=torch.float64, device=dev)
        sq = torch.empty(c, n, dtype=torch.float64, device=dev)
        buf = torch.empty(min(step, c), n, d, dtype=torch.float64, device=dev)
        for s in range(0, c, step):
            part = chunk[s : s + step]
            xc = _centred64(part, buf[: part.shape[0]])
            _, sq[s : s + step] = _gram_distances(xc, out=d2[s : s + step])
        bad = ~torch.isfinite(sq).all(dim=1)
        if bool(bad.any()):
            idx = torch.nonzero(bad).flatten()
            if not bool(torch.isfinite(chunk[idx]).all()):
                _raise_non_finite([first + i for i in idx.tolist()])
            raise TopKDError(f"point cloud(s) {first + int(idx[0])} ... hold values too large for float64 "
                             "squared distances (overflow); rescale the points")
        edges, w2 = _prim(d2)
        scale = sq.gather(1, edges[..., 0]) + sq.gather(1, edges[..., 1])
        short = w2 < _RECOMPUTE_BELOW * scale
        if bool(short.any()):
            exact = _edge_lengths(chunk, edges, torch.float64) ** 2  # cheap next to the Gram matrix
            w2 = torch.where(short, exact, w2)
        return edges, w2.sqrt()


_MIN_POOLED_CLOUDS = 64  # fewest clouds per pool worker (below, the vectorised steps are too small to hand off)
# Up to this many clouds per call (a training step's), the batched Prim's N-1 sequential steps cost more than they
# save: on the CPU scipy's compiled MST (float64 pdist, exact) is about 3x faster, on CUDA the Prim loop is replayed
# as one captured CUDA graph. Larger batches keep the batched Prim on the input's device.
_SMALL_BATCH = 16


def _scipy_tree(chunk: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``_chunk_tree`` for a few clouds via scipy on the CPU; results on the chunk's device."""
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import pdist, squareform

    x = chunk.detach().to("cpu", torch.float64).numpy()
    n = x.shape[1]
    edges = np.empty((x.shape[0], n - 1, 2), dtype=np.int64)
    lengths = np.empty((x.shape[0], n - 1), dtype=np.float64)
    for i, cloud in enumerate(x):
        dist = squareform(pdist(cloud))
        # csgraph reads a (near-)zero weight as "no edge", which breaks duplicate points. Adding the same
        # c to every edge leaves the MST unchanged (all spanning trees have N-1 edges); c = the smallest
        # positive distance keeps each weight within a factor 2 of its length, so no precision is lost.
        positive = dist[dist > 0]
        graph = dist + (positive.min() if positive.size else 1.0)
        np.fill_diagonal(graph, 0.0)
        tree = minimum_spanning_tree(graph).tocoo()
        edges[i, :, 0], edges[i, :, 1] = tree.row, tree.col
        lengths[i] = dist[tree.row, tree.col]
    return (torch.from_numpy(edges).to(chunk.device, non_blocking=True),
            torch.from_numpy(lengths).to(chunk.device, non_blocking=True))


def _tree_no_sync(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``_chunk_tree`` without any host synchronisation (short edges always recomputed): capturable."""
    x = x - x.mean(dim=1, keepdim=True)
    d2, sq = _gram_distances(x)
    edges, w2 = _prim(d2)
    scale = sq.gather(1, edges[..., 0]) + sq.gather(1, edges[..., 1])
    exact = _edge_lengths(x, edges) ** 2
    return edges, torch.where(w2 < _RECOMPUTE_BELOW * scale, exact, w2).sqrt()


# (shape, device) -> (graph, static input, static outputs): Prim's N-1 steps replayed as one CUDA graph
_CUDA_GRAPHS: "Dict[tuple, tuple]" = {}
_MAX_CUDA_GRAPHS = 16


def _graphed_tree(chunk: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``_chunk_tree`` on CUDA for a few clouds: the Prim loop captured once per shape in a CUDA graph and replayed
    (one launch instead of ~8 per Prim step, and no sync)."""
    key = (tuple(chunk.shape), chunk.device)
    entry = _CUDA_GRAPHS.get(key)
    with torch.no_grad():
        if entry is None:
            if len(_CUDA_GRAPHS) >= _MAX_CUDA_GRAPHS:
                _CUDA_GRAPHS.clear()
            static_in = torch.zeros(chunk.shape, dtype=torch.float64, device=chunk.device)
            side = torch.cuda.Stream(device=chunk.device)
            side.wait_stream(torch.cuda.current_stream(chunk.device))
            with torch.cuda.stream(side):
                _tree_no_sync(static_in)  # warm-up outside the capture
            torch.cuda.current_stream(chunk.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = _tree_no_sync(static_in)
            entry = _CUDA_GRAPHS[key] = (graph, static_in, static_out)
        graph, static_in, (edges, lengths) = entry
        static_in.copy_(chunk.detach())
        graph.replay()
        return edges.clone(), lengths.clone()


def _tree(chunk: torch.Tensor, first: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(edges ``[C, N-1, 2]``, float64 lengths ``[C, N-1]``) of each cloud's MST by the faster route (above)."""
    if chunk.shape[0] <= _SMALL_BATCH:
        _check_finite(chunk.detach(), first)
        return _graphed_tree(chunk) if chunk.is_cuda else _scipy_tree(chunk)
    return _chunk_tree(chunk, first)


def mst_edges(points: ArrayLike) -> torch.Tensor:
    """Euclidean MST edges of each cloud: ``[B, N, D]`` -> ``[B, N-1, 2]`` int64 (u, v) pairs in Prim's order."""
    _check_shape(points)
    x = _as_tensor(points)
    step = _chunk_size(x.shape[1], x.device)
    return torch.cat([_chunk_tree(x[s : s + step], s)[0] for s in range(0, x.shape[0], step)])


def _edge_lengths(x: torch.Tensor, edges: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``||x[u] - x[v]||``: x ``[B, N, D]``, edges ``[B, K, 2]`` -> ``[B, K]``, in ``dtype`` (default x's; only the
    endpoints are cast); differentiable in x, with gradient 0 (never NaN) at a zero-length edge."""
    b, n, d = x.shape
    flat = x.reshape(b * n, d)
    offset = (torch.arange(b, device=x.device) * n).view(b, 1)
    xu = flat.index_select(0, (edges[..., 0] + offset).flatten()).view(b, -1, d)
    xv = flat.index_select(0, (edges[..., 1] + offset).flatten()).view(b, -1, d)
    if dtype is not None:
        xu, xv = xu.to(dtype), xv.to(dtype)
    sq = ((xu - xv) ** 2).sum(dim=-1)
    positive = sq > 0
    safe = torch.where(positive, sq, torch.ones_like(sq))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(sq))


def _sorted_deaths(x: torch.Tensor, differentiable: bool) -> torch.Tensor:
    """Sorted MST edge lengths ``[B, N-1]`` of ``x`` ``[B, N, D]``: recomputed from ``x`` in its dtype when
    ``differentiable`` (gradients flow), else float64 without gradient."""
    step = _chunk_size(x.shape[1], x.device)

    def part(s: int, e: int) -> torch.Tensor:
        chunk = x[s:e]
        edges, lengths = _tree(chunk, s)
        if differentiable:
            lengths = _edge_lengths(chunk, edges)
        return torch.sort(lengths, dim=1).values

    pooled = x.device.type == "cpu" and not (differentiable and x.requires_grad)  # on our own workers
    workers = worker_count(x.shape[0], _MIN_POOLED_CLOUDS) if pooled else 1
    return torch.cat(run_parts(part, split(x.shape[0], workers, step), workers), dim=0)


def rips_h0_deaths(points: ArrayLike) -> ArrayLike:
    """Finite H0 deaths of each cloud's Rips filtration: ``[B, N, D]`` array or tensor -> ``[B, N-1]`` float64 MST
    edge lengths sorted ascending, zeros included, of the input's kind and device (gudhi's to ~1e-13 relative)."""
    _check_shape(points)
    with torch.no_grad():
        deaths = _sorted_deaths(_as_tensor(points).detach(), differentiable=False)
    return deaths if isinstance(points, torch.Tensor) else deaths.numpy()


def h0_deaths_torch(points: torch.Tensor) -> torch.Tensor:
    """Differentiable sorted H0 deaths ``[B, N-1]`` of ``[B, N, D]`` (MST chosen without gradient, edges recomputed)."""
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"h0_deaths_torch expects a torch.Tensor, got {type(points).__name__}; "
                         "use rips_h0_deaths for numpy arrays")
    _check_shape(points)
    return _sorted_deaths(points, differentiable=True)


# ----------------------------------------------------------------------------- diagrams
def _h0_rows(deaths: np.ndarray, keep_infinite: bool, drop_zero: bool) -> np.ndarray:
    """Sorted deaths ``[K]`` -> H0 diagram ``[k, 2]`` in gudhi's convention."""
    if drop_zero:
        deaths = deaths[deaths > 0]
    if keep_infinite:
        deaths = np.append(deaths, np.inf)
    rows = np.zeros((deaths.shape[0], 2), dtype=np.float64)
    rows[:, 1] = deaths
    return rows


def _float64_points(x: torch.Tensor) -> np.ndarray:
    """CPU tensor ``[B, N, D]`` -> finite float64 numpy array (`TopKDError` naming non-finite clouds)."""
    _check_finite(x)
    return x.numpy().astype(np.float64, copy=False)


def _h0_mst(x: torch.Tensor, keep_infinite: bool, drop_zero: bool, n_jobs) -> List[np.ndarray]:
    with torch.no_grad():
        deaths = _sorted_deaths(x, differentiable=False).numpy()
    return [_h0_rows(row, keep_infinite, drop_zero) for row in deaths]


def _gudhi_rips_diagrams(x: torch.Tensor, dim: int, n_jobs) -> List[np.ndarray]:
    from gudhi.sklearn import RipsPersistence

    rp = RipsPersistence(homology_dimensions=dim, n_jobs=n_jobs)
    return [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in rp.fit_transform(list(_float64_points(x)))]


def _h0_gudhi(x: torch.Tensor, keep_infinite: bool, drop_zero: bool, n_jobs) -> List[np.ndarray]:
    out = []
    for dg in _gudhi_rips_diagrams(x, 0, n_jobs):
        finite = np.sort(dg[np.isfinite(dg[:, 1]), 1])
        if not drop_zero:  # gudhi dropped the (0, 0) bars: put them back
            finite = np.concatenate([np.zeros(x.shape[1] - 1 - finite.shape[0]), finite])
        out.append(_h0_rows(finite, keep_infinite, drop_zero))
    return out


def _h1_gudhi(x: torch.Tensor, keep_infinite: bool, drop_zero: bool, n_jobs) -> List[np.ndarray]:
    return [dg[np.lexsort((dg[:, 0], dg[:, 1]))] for dg in _gudhi_rips_diagrams(x, 1, n_jobs)]


def _simplex_tree(cloud: np.ndarray):
    """gudhi's Rips simplex tree of one float64 cloud ``[N, D]`` to dimension 2, its persistence computed."""
    import gudhi

    st = gudhi.RipsComplex(points=cloud).create_simplex_tree(max_dimension=2)
    st.persistence()
    return st


def _h1_simplex_tree(x: torch.Tensor, keep_infinite: bool, drop_zero: bool, n_jobs) -> List[np.ndarray]:
    return [np.asarray(_simplex_tree(cloud).persistence_intervals_in_dimension(1), dtype=np.float64).reshape(-1, 2)
            for cloud in _float64_points(x)]


DiagramBackend = Callable[[torch.Tensor, bool, bool, object], List[np.ndarray]]

#: homology dimension -> backend name -> function(points: CPU tensor [B, N, D] of any float dtype, not yet
#: checked for NaN/inf; keep_infinite, drop_zero, n_jobs)
DIAGRAM_BACKENDS: Dict[int, Dict[str, DiagramBackend]] = {
    0: {"mst": _h0_mst, "gudhi": _h0_gudhi},
    1: {"gudhi": _h1_gudhi, "simplex_tree": _h1_simplex_tree},
}


def _backend(dim: int, name: str) -> DiagramBackend:
    try:
        return DIAGRAM_BACKENDS[dim][name]
    except KeyError:
        raise TopKDError(f"unknown H{dim} backend {name!r}; choose one of: {', '.join(sorted(DIAGRAM_BACKENDS[dim]))}"
                         ) from None


def rips_diagrams(points: ArrayLike, dims: Sequence[int] = (0,), keep_infinite: bool = False, drop_zero: bool = True,
                  h0_backend: str = "mst", h1_backend: str = "gudhi", n_jobs: int | None = None
                  ) -> Dict[int, List[np.ndarray]]:
    """Rips persistence diagrams of each cloud of ``[B, N, D]`` (computed on the CPU in float64) -> ``{dim: B arrays
    [k, 2]}``. Backends: H0 ``"mst"`` or ``"gudhi"`` (``gudhi.sklearn.RipsPersistence``, parallel with ``n_jobs``);
    H1 ``"gudhi"`` or ``"simplex_tree"`` (RipsComplex + SimplexTree: gudhi's exact row order)."""
    dims = tuple(int(d) for d in dims)
    if not dims:
        raise TopKDError("no homology dimension requested; pass dims=(0,), (1,) or (0, 1)")
    for d in set(dims) - set(SUPPORTED_DIMS):
        raise TopKDError(f"homology dimension {d} is not supported; use 0 and/or 1")
    _check_shape(points)
    funcs = {0: _backend(0, h0_backend), 1: _backend(1, h1_backend)}
    x = _as_tensor(points).detach().cpu()
    return {d: funcs[d](x, keep_infinite, drop_zero, n_jobs) for d in dims}


# ----------------------------------------------------------------------------- differentiable H1
def rips_h1_pairs(points: ArrayLike) -> List[np.ndarray]:
    """The edges behind each H1 point of each cloud's Rips filtration (gudhi's ``flag_persistence_generators``, zero-
    length pairs left out): ``[B, N, D]`` -> B int64 arrays ``[k, 4]`` ``(u, v, w, z)``: birth = ``|x_u - x_v|``,
    death = ``|x_w - x_z|`` (the longest edge of the triangle that kills it). Clouds in turn: gudhi holds the GIL."""
    _check_shape(points)
    out = []
    for cloud in _float64_points(_as_tensor(points).detach().cpu()):
        regular = _simplex_tree(cloud).flag_persistence_generators()[1]
        out.append(np.asarray(regular[0] if len(regular) else [], dtype=np.int64).reshape(-1, 4))
    return out


def h1_diagrams_torch(points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differentiable H1 diagrams: ``[B, N, D]`` tensor -> (births, deaths, mask), each ``[B, K]`` zero-padded, sorted
    by death, then birth; the pairs are chosen without gradient, their edge lengths recomputed from ``points``."""
    if not isinstance(points, torch.Tensor):
        raise ValueError(f"h1_diagrams_torch expects a torch.Tensor, got {type(points).__name__}")
    _check_shape(points)
    b = points.shape[0]
    pairs = rips_h1_pairs(points)
    k = max((len(p) for p in pairs), default=0)
    if k == 0:
        empty = points.new_zeros(b, 0)
        return empty, empty.clone(), empty.clone()
    edges = torch.zeros(b, 2 * k, 2, dtype=torch.long)
    mask = torch.zeros(b, k, dtype=points.dtype)
    for i, p in enumerate(pairs):
        if len(p):
            edges[i, : len(p)] = torch.from_numpy(p[:, :2])
            edges[i, k: k + len(p)] = torch.from_numpy(p[:, 2:])
            mask[i, : len(p)] = 1
    lengths = _edge_lengths(points, edges.to(points.device))
    mask = mask.to(points.device)
    births, deaths = lengths[:, :k] * mask, lengths[:, k:] * mask
    # sort each cloud's real points by (death, birth); padding (mask 0) goes last
    key_d = torch.where(mask > 0, deaths.detach(), torch.full_like(deaths, float("inf")))
    order = torch.from_numpy(np.stack([np.lexsort((bb, dd)) for bb, dd in
                                       zip(births.detach().cpu().double().numpy(), key_d.cpu().double().numpy())]))
    order = order.to(points.device)
    births, deaths, mask = births.gather(1, order), deaths.gather(1, order), mask.gather(1, order)
    return births, deaths, mask
