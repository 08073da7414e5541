"""TGD stage: persistence images of every image of a data set, cached on disk.

    python generate_image_PI.py --dataset cifar10 --data_root ./data --out ./data/image_pi --num_workers 2
    python generate_image_PI.py --dataset imagefolder --data_root ./data/cinic10 --name cinic10 \
        --splits train valid test

Writes `<out>/<name>_<split>/` (pi.npy `[N, 2C, 50, 50]`, targets.npy, manifest.yaml; `datasets.pi_images`)
from the un-normalized, un-augmented images; by default the official images (persim layout, 8-bit levels).
The same command again resumes an interrupted run or repairs a damaged cache; `--overwrite` recomputes.
"""
import argparse
import logging
import os
import shlex
import sys
import time
from typing import Optional, Sequence

from engine.stage import add_stage_args, setup_stage
from topkd_io import FolderLock, check_output_dir, run_cli

log = logging.getLogger("generate_image_PI")  # by name: run as a script, __name__ is "__main__"


def build_parser() -> argparse.ArgumentParser:
    from datasets.pi_images import DTYPES, raw_source_names
    from topology.image_pi import PI_LAYOUTS, QUANTIZATIONS

    p = argparse.ArgumentParser(description="Compute TGD image persistence images for a data set.")
    p.add_argument("--dataset", required=True, choices=raw_source_names(),
                   help="data set; 'imagefolder' reads <data_root>/<split>/<class>/<image> (e.g. CINIC-10)")
    p.add_argument("--name", default=None, help="name used in the cache folder (default: --dataset)")
    p.add_argument("--data_root", default="./data", help="folder holding the data set")
    p.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to compute")
    p.add_argument("--out", default="./data/image_pi", help="cache root; each split goes to <out>/<name>_<split>")
    add_stage_args(p, os.cpu_count() or 1, "worker processes computing the PIs")
    p.add_argument("--chunk_size", type=int, default=512, help="images per chunk (unit of work and of resume)")
    p.add_argument("--dtype", default=None, choices=DTYPES, help="storage type (default: uint8 for 8-bit PIs)")
    p.add_argument("--overwrite", action="store_true", help="replace a cache made with other settings")
    g = p.add_argument_group("persistence image (defaults: the TGD paper)")
    g.add_argument("--resolution", type=int, default=50)
    g.add_argument("--bandwidth", type=float, default=0.01, help="Gaussian std")
    g.add_argument("--pi_range", type=float, nargs=4, default=[0.0, 0.3, 0.0, 0.3],
                   metavar=("BMIN", "BMAX", "PMIN", "PMAX"), help="birth and persistence range of the grid")
    g.add_argument("--min_persistence", type=float, default=1e-3, help="drop points with persistence <= this")
    g.add_argument("--min_lifetime", type=float, default=0.02, help="keep points with persistence > this")
    g.add_argument("--layout", default="persim", choices=sorted(PI_LAYOUTS),
                   help="persim: the official images (pixel-integrated Gaussian); gudhi: point-sampled")
    g.add_argument("--quantize", default="uint8", choices=QUANTIZATIONS,
                   help="uint8: 8-bit levels as the official PNG files; none: float images")
    return p


def parse(argv: Optional[Sequence[str]] = None):
    """The options, checked -> ``(args, params)``: ``params`` the persistence-image parameters."""
    from topkd_io import check_number
    from topology.image_pi import ImagePIParams

    args = build_parser().parse_args(argv)
    setup_stage(args)
    check_number(args.bandwidth, "--bandwidth", low=0, low_open=True)
    for value in args.pi_range:
        check_number(value, "--pi_range")
    check_number(args.min_persistence, "--min_persistence", low=0)
    check_number(args.min_lifetime, "--min_lifetime", low=0)
    check_output_dir(args.out, "--out")
    params = ImagePIParams(resolution=args.resolution, bandwidth=args.bandwidth, im_range=tuple(args.pi_range),
                           min_persistence=args.min_persistence, min_lifetime=args.min_lifetime,
                           layout=args.layout, quantize=args.quantize)
    return args, params


def main(argv: Optional[Sequence[str]] = None) -> None:
    from tqdm import tqdm

    from datasets.pi_images import build_pi_cache, cache_folder, raw_images

    args, params = parse(argv)
    command = shlex.join(["python", "generate_image_PI.py", *(sys.argv[1:] if argv is None else argv)])
    dtype = args.dtype or ("uint8" if params.quantize == "uint8" else "float16")
    name = args.name or args.dataset
    for split in args.splits:
        source = raw_images(args.dataset, args.data_root, split)
        folder = cache_folder(args.out, name, split)  # a cache of other settings is refused unless --overwrite
        start = time.time()
        with FolderLock(folder, flag="--out", what="image-PI cache"), tqdm(desc=f"{name} {split}", unit="chunk") as bar:
            def progress(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            build_pi_cache(source, folder, name, split, params=params, workers=args.num_workers,
                           chunk_size=args.chunk_size, dtype=dtype, overwrite=args.overwrite,
                           progress=progress, command=command.replace(" --overwrite", ""))
        log.info(f"{name} {split}: {len(source)} images -> {folder} ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    run_cli(main, resume_hint="run the same command again: the finished chunks are kept")
