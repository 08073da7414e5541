"""Stage 2: point clouds -> shards on disk -> persistence diagrams -> persistence images, resumable.

1. clouds: cut into shards; a background thread computes and writes each shard's clouds and diagrams while the
   next shard's clouds are drawn (peak memory: two shards), then records them in the manifest (`pcd.manifest`).
   Every run rebuilds the recorded files that are missing or damaged; intact shards are never recomputed.
2. fit: the TopKD persistence-image parameters per dim, streamed over the diagram files (`StreamingPIFit`).
3. images: ``pi_dim<k>.npy`` (float32 ``[num_clouds, R*R]``, cloud order) written shard by shard.
"""
import itertools
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from topkd_io import AtomicNpyWriter, DamagedFileError, TopKDError, file_record, save_npy, save_npz, verify_file_once
from topology.persistence import SUPPORTED_DIMS, rips_diagrams
from topology.point_cloud_pi import PIParams, finite_rows, persistence_images

from .manifest import (check_resumable, diagram_name, load_diagrams, new_manifest, pcd_name, pi_name,
                       stack_diagrams, write_manifest)

log = logging.getLogger(__name__)

DEFAULT_SHARD_BYTES = 32 * 2**20  # a default shard holds about this many bytes of float32 clouds


def check_dims(dims: Sequence[int]) -> List[int]:
    """``--dims`` -> sorted unique homology dims, each in {0, 1}."""
    dims = sorted({int(d) for d in dims})
    if not dims or any(d not in SUPPORTED_DIMS for d in dims):
        raise TopKDError(f"--dims must be 0 and/or 1 (got {list(dims)}); e.g. --dims 0 or --dims 0 1")
    return dims


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_clouds(clouds: np.ndarray, shard: int, start: int, where: str = "the teacher / the --pcd input") -> None:
    """`TopKDError` naming the shard and cloud (``start``: global index of clouds[0]) when a cloud holds NaN/inf,
    or values beyond float32's range (the shards store float32: 1e300 would become inf there)."""
    flat = np.asarray(clouds).reshape(len(clouds), -1)
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    what = "NaN or inf values"
    if not bad.size and flat.dtype.itemsize > 4:  # finite float16/float32 values always fit float32
        bad = np.flatnonzero((np.abs(flat) > FLOAT32_MAX).any(axis=1))
        what = f"values beyond float32's range (up to {float(np.abs(flat).max()):.3g}; shards store float32)"
    if bad.size:
        j = int(bad[0])
        raise TopKDError(f"shard {shard}, cloud {j} (global cloud {start + j}) holds {what} ({bad.size} such "
                         f"cloud(s) in this shard); check {where}")


class StreamingPIFit:
    """`PIParams.fit` over diagrams that arrive shard by shard, equal to it on the whole set: the bandwidth reads
    only the first ``num_points`` stacked points, the image range is a running min/max of births and
    persistences, the normalizer a running max of the unnormalized images. Feed the diagrams in order to
    ``observe``, then ``params()``, then all again to ``observe_images``, then ``normalized(params)``."""

    def __init__(self, homology_dim: int, num_points: int = 200):
        self.homology_dim, self.num_points = homology_dim, num_points
        self.head: List[np.ndarray] = []  # the first diagrams, until num_points finite points are held
        self.head_points = self.points = 0
        self.lo, self.hi = np.full(2, np.inf), np.full(2, -np.inf)
        self.peak = 0.0

    def observe(self, diagrams: Sequence[np.ndarray]) -> None:
        for dg in diagrams:
            dg = finite_rows(dg)
            if self.head_points < self.num_points:
                self.head.append(dg)
                self.head_points += len(dg)
            if len(dg):
                bp = np.stack([dg[:, 0], dg[:, 1] - dg[:, 0]], axis=1)
                self.lo, self.hi = np.minimum(self.lo, bp.min(axis=0)), np.maximum(self.hi, bp.max(axis=0))
                self.points += len(dg)

    def params(self) -> PIParams:
        """Bandwidth and range (normalizer still 1) once every diagram has been observed."""
        if self.points == 0:
            raise TopKDError("cannot fit persistence-image parameters: no diagram holds a finite point (are the "
                             "clouds all single repeated points?)")
        head = PIParams.fit(self.head, num_points=self.num_points, homology_dim=self.homology_dim)
        return PIParams(head.bandwidth, (self.lo[0], self.hi[0], self.lo[1], self.hi[1]), head.resolution,
                        head.weight, 1.0, self.homology_dim)

    def observe_images(self, diagrams: Sequence[np.ndarray], params: PIParams) -> None:
        if len(diagrams):
            self.peak = max(self.peak, float(persistence_images(diagrams, params, normalize=False).max()))

    def normalized(self, params: PIParams) -> PIParams:
        if not self.peak > 0:
            raise TopKDError("all persistence images are zero: cannot normalize them; check the clouds")
        return PIParams(params.bandwidth, params.im_range, params.resolution, params.weight, self.peak,
                        params.homology_dim)


class Stage2:
    """One stage-2 folder being produced (see the module docstring). Shards are computed and written by
    one background thread while the next shard's clouds are drawn."""

    def __init__(self, source, out_dir: str, config: Dict[str, Any], dims: Sequence[int],
                 shard_size: Optional[int] = None, n_jobs: Optional[int] = None, progress: bool = True,
                 command: Optional[str] = None, record: Optional[Dict[str, Any]] = None):
        if source.dim < 1:
            raise TopKDError(f"point clouds need at least one coordinate per point, got D={source.dim} "
                             f"(clouds of shape [{source.num_clouds}, {source.points}, {source.dim}]); check the "
                             f"--pcd array or --layer")
        if source.points < 2:
            raise TopKDError(f"point clouds need at least 2 points each, got N={source.points}")
        if source.num_clouds < 1:
            raise TopKDError("the source holds no point cloud; check --passes/--batch_size or the --pcd file")
        self.source, self.out_dir, self.dims = source, out_dir, sorted(set(dims))  # checked at the door (check_dims)
        default = max(1, DEFAULT_SHARD_BYTES // (4 * source.points * source.dim))
        size = default if shard_size is None else int(shard_size)
        if size < 1:
            raise TopKDError(f"--shard_size must be positive, got {shard_size}")
        self.shard_size, self.num_shards = size, math.ceil(source.num_clouds / size)
        self.config = dict(config, dims=self.dims, shard_size=size, num_clouds=source.num_clouds,
                           points_per_cloud=source.points, feature_dim=source.dim)
        self.n_jobs, self.progress = n_jobs, progress
        self.problems: set = set()
        os.makedirs(out_dir, exist_ok=True)
        self.manifest = check_resumable(out_dir, self.config) or new_manifest(self.config, command)
        self.manifest.update(record or {})  # the run's identity and provenance (generate_PCD_PI.py)
        write_manifest(out_dir, self.manifest)

    # ------------------------------------------------------------------ phase 1: clouds + diagrams
    def shard_range(self, i: int) -> Tuple[int, int]:
        start = i * self.shard_size
        return start, min(self.source.num_clouds, start + self.shard_size)

    def _problems(self, files: Dict[str, Optional[Dict[str, Any]]]) -> List[str]:
        """Why recorded files (name relative to the folder -> record) are missing or damaged."""
        out = []
        for name, record in files.items():
            try:
                verify_file_once(os.path.join(self.out_dir, name), record or {})
            except DamagedFileError as exc:
                out.append(str(exc))
        return out

    def finished_shards(self) -> Dict[int, Dict[str, Any]]:
        """Recorded shards whose files are all present and intact (the others are redone)."""
        done = {}
        for rec in self.manifest["shards"]:
            files = rec.get("files") or {}
            problems = self._problems({n: files.get(n) for n in [rec["pcd"], *rec["diagrams"].values()]})
            self.problems.update(problems)
            if not problems:
                done[int(rec["index"])] = rec
        return done

    def image_problems(self) -> List[str]:
        """Problems of the recorded image files (dims not recorded yet are simply to do)."""
        entries = [self.manifest["pi"].get(d) for d in self.dims]
        return self._problems({e["file"]: e for e in entries if e})

    def compute_shard(self, i: int, clouds: np.ndarray) -> Dict[str, Any]:
        start, stop = self.shard_range(i)
        path = getattr(self.source, "path", None)
        check_clouds(clouds, i, start, f"the --pcd file {path}" if path else "the teacher's embeddings (--path_t)")
        diagrams = rips_diagrams(clouds, dims=self.dims, n_jobs=self.n_jobs)
        out = self.out_dir
        for d in self.dims:
            save_npz(os.path.join(out, diagram_name(d, i)), **stack_diagrams(diagrams[d]))
        save_npy(os.path.join(out, pcd_name(i)), np.ascontiguousarray(clouds, dtype=np.float32))
        names = [pcd_name(i)] + [diagram_name(d, i) for d in self.dims]
        return {"index": i, "start": start, "clouds": stop - start, "pcd": pcd_name(i),
                "diagrams": {d: diagram_name(d, i) for d in self.dims},
                "files": {n: file_record(os.path.join(out, n)) for n in names}}

    def run_clouds(self, max_shards: Optional[int] = None) -> bool:
        """Phase 1. Returns True when every shard is finished (False when stopped by ``max_shards``)."""
        done = self.finished_shards()
        self.manifest["shards"] = [done[i] for i in sorted(done)]
        todo = [i for i in range(self.num_shards) if i not in done]
        if max_shards is not None:
            todo = todo[: max(0, int(max_shards))]
        bar = tqdm(total=self.source.num_clouds, initial=sum(r["clouds"] for r in done.values()),
                   unit="cloud", desc="clouds+diagrams", disable=not self.progress, dynamic_ncols=True)
        # One background thread computes and writes shard i (diagrams, files) while this thread draws the
        # clouds of shard i + 1 (teacher passes); shards are recorded in order, each after its files exist.
        pending = None

        def record(i: int, count: int, future) -> None:
            rec = future.result()
            self.manifest["shards"] = sorted(self.manifest["shards"] + [rec], key=lambda r: r["index"])
            write_manifest(self.out_dir, self.manifest)
            bar.update(count)

        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage2-shard") as writer:
                for _, group in itertools.groupby(enumerate(todo), lambda t: t[1] - t[0]):  # one pass per run
                    run = [i for _, i in group]  # of consecutive shards
                    first, last = self.shard_range(run[0])[0], self.shard_range(run[-1])[1]
                    each = (cloud for chunk in self.source.clouds(first, last) for cloud in chunk)  # [N, D] each
                    for i in run:
                        start, stop = self.shard_range(i)
                        clouds = np.stack(list(itertools.islice(each, stop - start)))
                        if pending is not None:
                            record(*pending)
                        pending = (i, stop - start, writer.submit(self.compute_shard, i, clouds))
                if pending is not None:
                    record(*pending)
        finally:
            bar.close()
        return len(self.finished_shards()) == self.num_shards

    # ------------------------------------------------------------------ phases 2-3: PI fit + images
    def _diagram_shards(self, dim: int) -> Iterator[List[np.ndarray]]:
        for rec in self.manifest["shards"]:
            yield load_diagrams(os.path.join(self.out_dir, rec["diagrams"][dim]))

    def run_images(self) -> None:
        """Fit the PI parameters of each dim over all diagram shards and write ``pi_dim<k>.npy``."""
        points: Dict[int, int] = {}
        for d in self.dims:
            fit = StreamingPIFit(homology_dim=d)
            for diagrams in self._diagram_shards(d):
                fit.observe(diagrams)
            points[d] = fit.points
            params = fit.params()
            for diagrams in self._diagram_shards(d):
                fit.observe_images(diagrams, params)
            params = fit.normalized(params)
            path = os.path.join(self.out_dir, pi_name(d))
            with AtomicNpyWriter(path, (self.source.num_clouds, params.num_pixels), np.float32) as writer, \
                    tqdm(total=self.source.num_clouds, unit="cloud", desc=f"images H{d}", disable=not self.progress,
                         dynamic_ncols=True) as bar:
                for rec, diagrams in zip(self.manifest["shards"], self._diagram_shards(d)):  # in cloud order
                    writer.write(persistence_images(diagrams, params).astype(np.float32))
                    bar.update(rec["clouds"])
            self.manifest["pi"][d] = {"file": pi_name(d), "params": params.to_dict(), **file_record(path)}
        self.manifest["counts"] = {"clouds": self.source.num_clouds, "shards": self.num_shards,
                                   **{f"finite_points_dim{d}": int(points[d]) for d in self.dims}}
        self.manifest["complete"] = True
        write_manifest(self.out_dir, self.manifest)

    def run(self, max_shards: Optional[int] = None) -> Dict[str, Any]:
        t0 = time.perf_counter()
        done = self.finished_shards()
        images = self.image_problems()
        if (self.manifest.get("complete") and len(done) == self.num_shards and not images
                and all(d in self.manifest["pi"] for d in self.dims)):
            return self.manifest  # nothing left to do
        self.problems.update(images)
        if self.problems:
            shown = "; ".join(sorted(self.problems)[:3]) + (f" (+{len(self.problems) - 3} more)"
                                                            if len(self.problems) > 3 else "")
            log.info(f"stage 2: rebuilding in {self.out_dir}: {shown}")
        if self.manifest.get("complete"):
            self.manifest["complete"] = False
            write_manifest(self.out_dir, self.manifest)
        if self.run_clouds(max_shards):
            self.run_images()
        self.manifest["seconds_last_run"] = round(time.perf_counter() - t0, 3)
        return self.manifest


def generate(source, out_dir: str, config: Dict[str, Any], dims: Sequence[int] = (0,),
             shard_size: Optional[int] = None, max_shards: Optional[int] = None, **kwargs) -> Dict[str, Any]:
    """Run (or resume) stage 2 into ``out_dir`` -> the manifest dict (``complete`` False if stopped early);
    ``record`` (keyword): top-level manifest entries written with it (the run's ``identity`` and ``provenance``)."""
    return Stage2(source, out_dir, config, dims, shard_size, **kwargs).run(max_shards)
