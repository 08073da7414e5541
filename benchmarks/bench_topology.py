"""Throughput of the topology stage: official-style gudhi pipeline vs ours (printed, never asserted).

Official style: per cloud, RipsComplex + SimplexTree.persistence (H0), then gudhi's PersistenceImage over the
set. Ours: batched MST H0 (rips_diagrams) + vectorized images (persistence_images), and on CUDA rips_h0_deaths +
h0_images_torch. Both use the same PIParams (fitted once on our diagrams), so the images must agree.

    .venv/bin/python benchmarks/bench_topology.py            # ~3-4 min on 2 cores
    .venv/bin/python benchmarks/bench_topology.py --quick    # a few seconds
"""
import argparse
import os
import time

import numpy as np
import torch

from topology.point_cloud_pi import WEIGHTS, PIParams, h0_images_torch, persistence_images
from topology.persistence import rips_diagrams, rips_h0_deaths


REPEATS = 3  # --repeats


def timed(fn, *args):
    """(output, median seconds over REPEATS calls): a shared 2-core machine is noisy."""
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def official_diagrams(x, dim=0):
    import gudhi

    out = []
    for cloud in x:
        st = gudhi.RipsComplex(points=cloud).create_simplex_tree(max_dimension=dim + 1)
        st.persistence()
        dg = np.asarray(st.persistence_intervals_in_dimension(dim)).reshape(-1, 2)
        out.append(dg[np.isfinite(dg[:, 1])])
    return out


def official_images(diagrams, params):
    from gudhi.representations import PersistenceImage

    fn = WEIGHTS[params.weight]
    pi = PersistenceImage(bandwidth=params.bandwidth, weight=lambda p: fn(p[0], p[1], np),
                          resolution=list(params.resolution), im_range=list(params.im_range))
    return pi.fit_transform(diagrams) / params.normalizer


def cuda_rate(x, params, min_clouds=8192):
    """Clouds/s of rips_h0_deaths + h0_images_torch on CUDA (x tiled to >= min_clouds: a GPU needs big batches),
    and the images of x's own clouds."""
    big = torch.from_numpy(x).cuda().repeat(max(1, -(-min_clouds // len(x))), 1, 1)
    h0_images_torch(rips_h0_deaths(big), params)  # warm-up
    torch.cuda.synchronize()

    def images():
        out = h0_images_torch(rips_h0_deaths(big), params)
        torch.cuda.synchronize()
        return out

    img, seconds = timed(images)
    return len(big) / seconds, img[: len(x)].cpu().numpy()


def bench(d, clouds, h1, x):
    """One width: a line of rates and ratios gudhi / ours."""
    params = PIParams.fit(rips_diagrams(x)[0])  # also warms up both pipelines
    official_images(official_diagrams(x[:4]), params)
    ours_dg, t_dg = timed(lambda: rips_diagrams(x)[0])
    ours_pi, t_pi = timed(persistence_images, ours_dg, params)
    ref_dg, t_rdg = timed(official_diagrams, x)
    ref_pi, t_rpi = timed(official_images, ref_dg, params)
    rate = lambda t: clouds / t  # noqa: E731
    print(f"d={d:5d} H0  diagrams: gudhi {rate(t_rdg):9.0f}/s  ours {rate(t_dg):9.0f}/s  x{t_rdg / t_dg:5.1f}"
          f" | images: gudhi {rate(t_rpi):8.0f}/s  ours {rate(t_pi):9.0f}/s  x{t_rpi / t_pi:5.1f}"
          f" | total x{(t_rdg + t_rpi) / (t_dg + t_pi):5.1f}  max|PI diff| {np.abs(ours_pi - ref_pi).max():.1e}",
          flush=True)
    if torch.cuda.is_available():
        r, img = cuda_rate(x, params)
        print(f"         CUDA diagrams+images {r:9.0f}/s  (x{r * (t_rdg + t_rpi) / clouds:5.1f} gudhi)"
              f"  max|PI diff| {np.abs(img - ref_pi).max():.1e}")
    if h1:
        n1 = max(8, clouds // 8)
        ours1, t1 = timed(lambda: rips_diagrams(x[:n1], dims=(1,))[1])
        ref1, tr1 = timed(official_diagrams, x[:n1], 1)
        same = all(np.allclose(np.sort(a, axis=0), np.sort(b, axis=0), rtol=1e-12) for a, b in zip(ours1, ref1))
        print(f"         H1  diagrams: gudhi simplex tree {n1 / tr1:7.0f}/s  ours (RipsPersistence) "
              f"{n1 / t1:7.0f}/s  x{tr1 / t1:5.1f}  same points: {same}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few clouds, a few seconds")
    ap.add_argument("--clouds", type=int, default=None, help="clouds per width (default 2000, quick 48)")
    ap.add_argument("--points", type=int, default=64, help="points per cloud")
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 512, 2048], help="feature widths d")
    ap.add_argument("--h1", action="store_true", help="also time H1 (simplex tree vs RipsPersistence)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timings are medians over this many calls")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    global REPEATS
    REPEATS = max(1, args.repeats)
    if args.threads:
        torch.set_num_threads(args.threads)
    clouds = args.clouds or (48 if args.quick else 2000)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{clouds} clouds x {args.points} points per width, median of {REPEATS} calls; torch threads "
          f"{torch.get_num_threads()}, cpu count {os.cpu_count()}, cuda {torch.cuda.is_available()}; load average "
          f"{load}", flush=True)
    rng = np.random.default_rng(args.seed)
    for d in args.dims:
        x = np.maximum(rng.standard_normal((clouds, args.points, d)), 0) + 0.01 * rng.random((clouds, args.points, d))
        bench(d, clouds, args.h1, x)


if __name__ == "__main__":
    main()
