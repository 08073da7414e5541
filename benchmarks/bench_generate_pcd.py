"""Peak memory and speed of stage 2 (generate_PCD_PI.py --pcd, H0) against the official in-RAM layout.

    .venv/bin/python benchmarks/bench_generate_pcd.py [--clouds 20000] [--points 64] [--dim 64]

Runs stage 2 on random float32 clouds in a child process and reads its peak RSS; the official layout (every cloud
as float64 plus every diagram in RAM) is computed. Prints both, their ratio and clouds/s; asserts nothing.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# A process that only imports what stage 2 imports (both layouts pay its peak RSS, in bytes).
BASELINE = ("import resource, torch, gudhi, scipy, yaml, tqdm, topology.persistence, topology.point_cloud_pi; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clouds", type=int, default=20000)
    p.add_argument("--points", type=int, default=64)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--shard_size", type=int, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "clouds.npy")
        # Written in pieces through a plain file, not a memmap: a child inherits its parent's peak RSS at
        # fork, and mapped pages would count there, so the parent must stay small.
        rng = np.random.default_rng(0)
        with open(src, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                    "shape": (args.clouds, args.points, args.dim)})
            for s in range(0, args.clouds, 4096):
                n = min(4096, args.clouds - s)
                f.write(np.abs(rng.normal(size=(n, args.points, args.dim))).astype(np.float32).tobytes())
        cmd = [sys.executable, os.path.join(ROOT, "generate_PCD_PI.py"), "--pcd", src, "--dims", "0",
               "--out_dir", os.path.join(tmp, "out"), "--no_progress"]
        if args.shard_size:
            cmd += ["--shard_size", str(args.shard_size)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
    out = subprocess.run([sys.executable, "-c", BASELINE], check=True, cwd=ROOT, capture_output=True, text=True)
    base = int(out.stdout.strip().splitlines()[-1])
    official = args.clouds * args.points * args.dim * 8 + args.clouds * args.points * 2 * 8
    mib = 2 ** 20
    print(f"clouds: {args.clouds} x {args.points} x {args.dim}")
    print(f"streamed peak RSS (measured, whole process incl. torch import): {peak / mib:9.1f} MiB")
    print(f"official in-RAM float64 clouds + diagrams (computed):           {official / mib:9.1f} MiB")
    print(f"import baseline (torch, gudhi ...; paid by both):               {base / mib:9.1f} MiB")
    print(f"streamed data above the baseline:                               {(peak - base) / mib:9.1f} MiB")
    print(f"ratio official / streamed (totals, baseline added to official): {(official + base) / peak:.2f}x")
    print(f"ratio official / streamed (data above the baseline):            {official / max(peak - base, 1):.2f}x")
    print(f"throughput: {args.clouds / seconds:.0f} clouds/s ({seconds:.1f} s incl. start-up)")


if __name__ == "__main__":
    main()
