"""Stage 2: point clouds of a teacher's embeddings and their persistence images (TopKD).

    python generate_PCD_PI.py --path_t save_t_models/resnet56_cifar100_lr_0.05_decay_0.0005_trial_0/resnet56_best.pth \
        --dataset cifar100 --batch_size 64 --passes 256 --layer -1 --dims 0

Each cloud is one shuffled, augmented training batch of ``--batch_size`` images embedded by the frozen
teacher (no normalization; ``--layer -1`` = the FC input, an earlier stage index is global-average-pooled);
``--passes`` passes over the training set with drop_last. ``--teacher_bn batch`` (default, the official
stage 2) lets the teacher's BatchNorm use each batch's statistics, leaving its stored running statistics
untouched; ``--teacher_bn eval`` uses the stored statistics. It matters because the RipsNet learned from
these clouds is later applied to eval-mode teacher features in train_student.py: ``batch`` reproduces the
paper's RipsNet, ``eval`` trains it on the distribution it will see. ``--pcd FILE.npy``
takes ready clouds ``[num_clouds, N, D]`` instead. Output folder (default
``ripsnet/data/<dataset>_<teacher>_batch<bs>_layer<l>/``): ``shards/`` (clouds and diagrams),
``pi_dim<k>.npy`` and ``manifest.yaml``. Rerunning with the same arguments resumes where it stopped.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
from typing import Any, Dict, Optional, Sequence

from engine.record import option
from engine.stage import add_stage_args, setup_stage
from topkd_io import run_cli

log = logging.getLogger("generate_PCD_PI")  # by name: run as a script, __name__ is "__main__"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Generate teacher point clouds and their persistence images.")
    src = p.add_argument_group("source")
    option(src, "--path_t", default=None, result=False,  # an input: in the identity by its SHA-256
           help="teacher checkpoint (ours or official {'model': ...}), its run folder, or a folder of run "
                "folders (default: the one finished teacher of --model_t / --dataset / --teacher_trial "
                "under save_t_models, as the official script takes its teacher without arguments)")
    option(src, "--model_t", default=None, result=False,  # the resolved architecture is recorded instead
           help="teacher architecture when the checkpoint does not name it")
    option(src, "--teacher_trial", type=int, default=None, result=False,
           help="without an exact --path_t: take the teacher of this trial")
    option(src, "--teacher_weights", default=None, choices=("torchvision",), result=False,
           help="instead of --path_t: torchvision's pretrained --model_t (ImageNet; from torch's hub "
                "cache, downloaded when missing)")
    option(src, "--pcd", default=None, help="ready point clouds .npy [num_clouds, N, D] (skips the teacher)",
           result=False)
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=None, help="data set of the teacher (default cifar100); a label with --pcd")
    option(data, "--data_root", default="./data", result=False)
    data.add_argument("--image_size", type=int, default=None, help="image side for datasets that allow it (digits)")
    add_stage_args(data, 4, "DataLoader worker processes")
    option(data, "--data_on_device", action="store_true", result=False,
           help="hold the training set on --device and augment batches there (same draws)")
    cl = p.add_argument_group("clouds")
    cl.add_argument("--layer", type=int, default=-1, help="-1 = FC input; k = stage k, average-pooled")
    cl.add_argument("--batch_size", type=int, default=64, help="images per batch = points per cloud")
    cl.add_argument("--teacher_bn", default="batch", choices=("batch", "eval"),
                    help="teacher BatchNorm while embedding: 'batch' = each batch's statistics, the stored "
                         "running statistics untouched (the official stage 2; default); 'eval' = the stored "
                         "running statistics (how train_student.py applies the RipsNet to the teacher)")
    cl.add_argument("--passes", type=int, default=256, help="passes over the training set")
    cl.add_argument("--seed", type=int, default=0)
    topo = p.add_argument_group("topology")
    topo.add_argument("--dims", type=int, nargs="+", default=[0], help="homology dims: 0 and/or 1")
    option(topo, "--n_jobs", type=int, default=None, help="processes for gudhi's H1", result=False)
    out = p.add_argument_group("output")
    option(out, "--out_dir", default=None, result=False,
           help="output folder (default: <save_dir>/<dataset>_<teacher>_batch<bs>_layer<l>-<identity hash>)")
    option(out, "--save_dir", default=os.path.join("ripsnet", "data"), help="parent of the default --out_dir",
           result=False)
    option(out, "--plan", action="store_true", result=False,
           help="print '<status> <folder> <why>' (new, finished, partial, conflict, pending) and exit")
    option(out, "--overwrite", action="store_true", result=False,
           help="delete the stage-2 files of an earlier run in --out_dir (named) and start afresh")
    out.add_argument("--shard_size", type=int, default=None, help="clouds per shard (default: ~32 MiB)")
    option(out, "--max_shards", type=int, default=None, help="debug: stop after this many new shards", result=False)
    option(out, "--device", default="auto", choices=("auto", "cpu", "cuda"), result=False)
    option(out, "--no_progress", action="store_true", help="hide the progress bars", result=False)
    return p


def teacher_source(args, arch: str):
    """Build the teacher source and its config entries from the arguments (the teacher file is resolved)."""
    from datasets import build_datasets
    from engine.distributed import pick_device
    from models import load_model
    from topkd_io import file_identity
    from pcd.sources import TeacherCloudSource

    if not os.path.isfile(args.path_t):
        raise FileNotFoundError(f"teacher checkpoint {args.path_t} not found; check --path_t")
    options = {"image_size": args.image_size} if args.image_size else {}
    data = build_datasets(args.dataset, args.data_root, download=False, val_split=0.0, seed=args.seed,
                          train_augment=True, **options)
    model, arch, _ = load_model(args.path_t, arch=arch, num_classes=data.num_classes, in_channels=data.in_channels)
    identity = {"teacher": file_identity(args.path_t), "arch": arch, "num_classes": data.num_classes}
    source = TeacherCloudSource(model, data.train, batch=args.batch_size, passes=args.passes,
                                layer=args.layer, seed=args.seed, device=pick_device(args.device).type,
                                workers=args.num_workers, identity=identity, teacher_bn=args.teacher_bn,
                                data_on_device=args.data_on_device)
    config = {"source": source.config(), "dataset": args.dataset, "image_size": data.image_size,
              "layer": args.layer, "batch_size": args.batch_size, "passes": args.passes, "seed": args.seed,
              "teacher_bn": args.teacher_bn}
    return source, config


def array_source(args):
    from pcd.sources import ArrayCloudSource

    source = ArrayCloudSource(args.pcd)
    return source, {"source": source.config(), "dataset": args.dataset,
                    "layer": None, "batch_size": source.points, "passes": None, "seed": args.seed}


def _cloud_points(path: str) -> Any:
    """Points per cloud of a ``--pcd`` array (read from its header), ``?`` when it cannot be read (the
    source reports why when it is built)."""
    import numpy as np

    try:
        return int(np.load(path, mmap_mode="r", allow_pickle=False).shape[1])
    except (OSError, ValueError, IndexError):
        return "?"


STAGE2_FILES = ("manifest.yaml", "shards", "pi_dim*.npy")


def parse(argv: Optional[Sequence[str]] = None):
    """Parse, find the teacher (or the --pcd file) and name the output folder -> ``(args, identity, inputs)``;
    loads no data. Under ``--plan`` a teacher that does not exist yet leaves the identity pending."""
    from datasets import data_fingerprint
    from engine.config import check_args
    from engine.record import identity_of, input_sha256
    from models.pretrained import resolve_teacher_path
    from models.teacher_lookup import teacher_and_arch
    from pcd.generate import check_dims

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_stage(args)  # logging, threads
    check_args(args, parser)
    args.dims = check_dims(args.dims)
    if args.pcd is not None and (args.path_t is not None or args.teacher_weights is not None):
        raise ValueError("pass either a teacher (--path_t / --teacher_weights) or --pcd (ready clouds .npy), "
                         "not both")
    if args.pcd is not None:
        if not os.path.isfile(args.pcd) and not args.plan:
            raise FileNotFoundError(f"--pcd file {args.pcd} not found; pass a .npy array [num_clouds, N, D]")
        inputs = {"pcd": args.pcd}
        name = os.path.splitext(os.path.basename(args.pcd))[0]
        points = _cloud_points(args.pcd)
    else:
        args.dataset = args.dataset or "cifar100"
        if args.teacher_weights:
            args.path_t = resolve_teacher_path(args.path_t, args.model_t, args.teacher_weights)
        args.path_t, args.model_t = teacher_and_arch(args.path_t, args.model_t, args.dataset, args.teacher_trial, args.plan)
        inputs = {"path_t": args.path_t}
        name, points = args.model_t, args.batch_size
    hashes = {k: input_sha256(v) for k, v in inputs.items()}  # a missing teacher: None (pending)
    if args.pcd is None:  # the training images it embeds
        hashes["data_root"] = data_fingerprint(args.dataset, args.data_root, must_exist=not args.plan)
    identity = identity_of(parser, vars(args), hashes)
    args.out_dir = args.out_dir or os.path.join(
        args.save_dir, f"{args.dataset or 'pcd'}_{name}_batch{points}_layer{args.layer}-{identity.hash}")
    return args, identity, inputs


def rebuild_line(argv: Optional[Sequence[str]], out_dir: str) -> str:
    """This command line as the manifest records it (readers print it to rebuild the folder): ``--max_shards``
    dropped, ``--out_dir`` pinned to the folder written."""
    import shlex
    import sys

    from topkd_io.checksums import pinned_command

    words = ["python", "generate_PCD_PI.py", *(sys.argv[1:] if argv is None else argv)]
    return pinned_command(shlex.join(words), "--out_dir", out_dir, drop=("--max_shards",))


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run stage 2 -> its manifest. Ctrl-C exits with status 130 and logs the command that resumes the run
    (this command, ``--out_dir`` pinned: a rerun keeps the finished shards)."""
    from engine.distributed import pick_device
    from engine.record import plan_run, provenance
    from pcd.generate import generate
    from pcd.manifest import stage2_state

    args, identity, inputs = parse(argv)  # hashes the input files: may take a while
    run = plan_run(args.out_dir, identity, functools.partial(stage2_state, args.out_dir, identity), inputs,
                   plan=args.plan, overwrite=args.overwrite, self_resuming=True, flag="--out_dir", what="stage-2",
                   files=STAGE2_FILES)  # the folder, or why to stop here; an unfinished one is continued
    if run.stop:
        return run.outcome
    source, config = array_source(args) if args.pcd else teacher_source(args, args.model_t)
    command = rebuild_line(argv, args.out_dir)
    record = {"identity": identity.to_dict(), "provenance": provenance(inputs, pick_device(args.device).type)}
    with run.claim():  # the folder's lock while the shards are written
        try:
            manifest = generate(source, args.out_dir, config, dims=args.dims, shard_size=args.shard_size,
                                max_shards=args.max_shards, n_jobs=args.n_jobs, progress=not args.no_progress,
                                command=command, record=record)
        except KeyboardInterrupt:  # run_cli's hint (--resume) is the training stages'; this one reruns its command
            log.warning(f"interrupted: the finished shards in {args.out_dir} are kept; resume with: {command}")
            raise SystemExit(130) from None
    if manifest["complete"]:
        log.info(f"stage 2 done: {source.num_clouds} clouds of {source.points} x {source.dim} -> {args.out_dir} "
                 f"(pi_dim{{{','.join(map(str, args.dims))}}}.npy, manifest.yaml)")
    else:
        total = -(-source.num_clouds // manifest["config"]["shard_size"])
        log.info(f"stopped after {len(manifest['shards'])} of {total} shards; rerun the same command to resume into "
                 f"{args.out_dir}")
    return manifest


if __name__ == "__main__":
    run_cli(main, resume_hint="run the same command again: the finished shards are kept")
