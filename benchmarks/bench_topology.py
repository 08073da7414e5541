"""Throughput of the topology stage: official-style gudhi pipeline vs ours (printed, never asserted).

Official style: per cloud, RipsComplex + SimplexTree.persistence (H0), then gudhi's
PersistenceImage over the set. Ours: batched MST H0 (rips_diagrams) + vectorized images
(persistence_images), and on CUDA rips_h0_deaths + h0_images_torch when a GPU is present.
Both use the same PIParams (fitted once on our diagrams), so the images must agree.

    .venv/bin/python benchmarks/bench_topology.py            # ~3-4 min on 2 cores
    .venv/bin/python benchmarks/bench_topology.py --quick    # a few seconds
    .venv/bin/python benchmarks/bench_topology.py --contend 2 --threads 1 2   # idle, then beside 2 busy torch jobs

``--contend N`` runs every measurement twice: on the machine as it is, then with N competing processes of its
own (each a 2-thread torch matmul loop, started here and ended by PID), and prints both ratios side by side
for each torch thread count of ``--threads``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

from topology.point_cloud_pi import WEIGHTS, PIParams, h0_images_torch, persistence_images
from topology.persistence import rips_diagrams, rips_h0_deaths


REPEATS = 3


def timed(fn, *args, **kwargs):
    """(output, median seconds over REPEATS calls): a shared 2-core machine is noisy."""
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
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


def cuda_rate(x, params, min_clouds=8192, repeats=3):
    """Clouds/s of rips_h0_deaths + h0_images_torch on CUDA (x tiled to >= min_clouds: a GPU
    needs big batches), and the images of x's own clouds."""
    xt = torch.from_numpy(x).cuda()
    big = xt.repeat(max(1, -(-min_clouds // len(x))), 1, 1)
    h0_images_torch(rips_h0_deaths(big), params)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        img = h0_images_torch(rips_h0_deaths(big), params)
    torch.cuda.synchronize()
    return repeats * len(big) / (time.perf_counter() - t0), img[: len(x)].cpu().numpy()


# a competing job: two intra-op threads of torch matmuls, forever (ended by its PID)
CONTENDER = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(384, 384)\n"
             "while True:\n    a = torch.tanh(a @ a)\n")


def start_contenders(n):
    """N competing 2-thread torch processes -> their Popen objects (give them a moment to spin up)."""
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(n)]
    time.sleep(2.0)
    return procs


def stop_contenders(procs):
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def load_text():
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average n/a"


def bench(d, clouds, points, rng, h1, x=None, pool=True):
    """One width: prints a line, returns the ratio gudhi / ours over diagrams + images (x: the clouds to use;
    pool=False: our kernels on torch's intra-op threads instead of topology.parallel's own workers)."""
    from topology import parallel

    parallel.POOL_ENABLED = pool
    if x is None:
        x = np.maximum(rng.standard_normal((clouds, points, d)), 0) + 0.01 * rng.random((clouds, points, d))
    params = PIParams.fit(rips_diagrams(x)[0])  # also warms up both pipelines
    official_images(official_diagrams(x[:4]), params)
    ours_dg, t_dg = timed(lambda: rips_diagrams(x)[0])
    ours_pi, t_pi = timed(persistence_images, ours_dg, params)
    ref_dg, t_rdg = timed(official_diagrams, x)
    ref_pi, t_rpi = timed(official_images, ref_dg, params)
    rate = lambda t: clouds / t  # noqa: E731
    print(f"d={d:5d}{'' if pool else ' (intra-op)'} H0  diagrams: gudhi {rate(t_rdg):9.0f}/s  ours {rate(t_dg):9.0f}/s  x{t_rdg / t_dg:5.1f}"
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
    return (t_rdg + t_rpi) / (t_dg + t_pi)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few clouds, a few seconds")
    ap.add_argument("--clouds", type=int, default=None, help="clouds per width (default 2000, quick 48)")
    ap.add_argument("--points", type=int, default=64, help="points per cloud")
    ap.add_argument("--dims", type=int, nargs="+", default=[64, 512, 2048], help="feature widths d")
    ap.add_argument("--h1", action="store_true", help="also time H1 (simplex tree vs RipsPersistence)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timings are medians over this many calls")
    ap.add_argument("--contend", type=int, default=0, metavar="N",
                    help="also measure beside N competing 2-thread torch processes (started and ended here)")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="torch thread counts to measure (default: torch's current count)")
    ap.add_argument("--intraop", action="store_true",
                    help="with more than one thread, also time our kernels on torch's intra-op threads (the route "
                         "before topology.parallel) in the same conditions")
    args = ap.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a `timeout` still ends the contenders (finally)
    global REPEATS
    REPEATS = max(1, args.repeats)
    clouds = args.clouds or (48 if args.quick else 2000)
    thread_counts = args.threads or [torch.get_num_threads()]
    print(f"{clouds} clouds x {args.points} points per width, median of {REPEATS} calls; torch threads "
          f"{thread_counts}, cpu count {os.cpu_count()}, cuda {torch.cuda.is_available()}; {load_text()}", flush=True)
    rng = np.random.default_rng(args.seed)
    data = {d: np.maximum(rng.standard_normal((clouds, args.points, d)), 0)
            + 0.01 * rng.random((clouds, args.points, d)) for d in args.dims}
    states = ["idle"] + ([f"contend {args.contend}"] if args.contend else [])
    ratios = {}
    for state in states:
        procs = start_contenders(args.contend) if state != "idle" else []
        try:
            for n in thread_counts:
                torch.set_num_threads(n)
                print(f"--- {state}, torch threads {n}; {load_text()}", flush=True)
                for d in args.dims:
                    ratios[state, n, d] = bench(d, clouds, args.points, rng, args.h1, x=data[d])
                    if args.intraop and n > 1:
                        ratios[state, -n, d] = bench(d, clouds, args.points, rng, False, x=data[d], pool=False)
        finally:
            stop_contenders(procs)
    if args.contend:
        print(f"\ndiagrams + images, gudhi time / ours (xN = ours N times faster); {args.contend} competing "
              f"2-thread torch processes on {os.cpu_count()} cores")
        print(f"{'d':>6} {'threads':>8} {'idle':>8} {states[1]:>12}")
        for n in thread_counts + [-n for n in thread_counts if args.intraop and n > 1]:
            for d in args.dims:
                label = f"{n}" if n > 0 else f"{-n} intra"
                print(f"{d:6d} {label:>8} {ratios['idle', n, d]:7.1f}x {ratios[states[1], n, d]:11.1f}x")


if __name__ == "__main__":
    main()
