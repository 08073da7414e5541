"""Stage 2: point clouds of a teacher's embeddings and their persistence images (TopKD).

    python generate_PCD_PI.py --path_t save_t_models/resnet56_cifar100_lr_0.05_decay_0.0005_trial_0/resnet56_best.pth \
        --dataset cifar100 --batch_size 64 --passes 256 --layer -1 --dims 0

Each cloud is one shuffled, augmented training batch of ``--batch_size`` images embedded by the frozen
teacher (``--layer -1`` = the FC input; an earlier stage is average-pooled); ``--passes`` passes over the
training set. ``--teacher_bn batch`` (the official stage 2) uses each batch's BatchNorm statistics, ``eval``
the stored ones, which is how train_student.py applies the RipsNet. ``--pcd FILE.npy`` takes ready clouds
``[num_clouds, N, D]`` instead. Output folder (default ``ripsnet/data/<dataset>_<teacher>_batch<bs>_layer<l>-
<hash>/``): ``shards/``, ``pi_dim<k>.npy`` and ``manifest.yaml``. The same command again resumes where it stopped.
"""
import argparse
import contextlib
import functools
import logging
import os
import shlex
import sys
from typing import Any, Dict, Optional, Sequence

from engine.record import option
from engine.stage import add_stage_args, setup_stage
from topkd_io import TopKDError, run_cli

log = logging.getLogger("generate_PCD_PI")  # by name: run as a script, __name__ is "__main__"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Generate teacher point clouds and their persistence images.")
    src = p.add_argument_group("source")
    option(src, "--path_t", default=None, result=False,  # an input: in the identity by its SHA-256
           help="teacher checkpoint, its run folder, or a folder of run folders (default: the one finished "
                "teacher of --model_t / --dataset / --teacher_trial under save_t_models)")
    option(src, "--model_t", default=None, result=False,  # the resolved architecture is recorded instead
           help="teacher architecture when the checkpoint does not name it")
    option(src, "--teacher_trial", type=int, default=None, result=False,
           help="without an exact --path_t: take the teacher of this trial")
    option(src, "--teacher_weights", default=None, choices=("torchvision",), result=False,
           help="instead of --path_t: torchvision's pretrained --model_t (ImageNet; downloaded when missing)")
    option(src, "--pcd", default=None, result=False, help="ready point clouds .npy [num_clouds, N, D], no teacher")
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
                    help="teacher BatchNorm: each batch's statistics (the official stage 2) or the stored ones "
                         "(as train_student.py applies the RipsNet)")
    cl.add_argument("--passes", type=int, default=256, help="passes over the training set")
    cl.add_argument("--seed", type=int, default=0)
    topo = p.add_argument_group("topology")
    topo.add_argument("--dims", type=int, nargs="+", default=[0], help="homology dims: 0 and/or 1")
    option(topo, "--n_jobs", type=int, default=None, help="processes for gudhi's H1", result=False)
    out = p.add_argument_group("output")
    option(out, "--out_dir", default=None, result=False,
           help="output folder (default: <save_dir>/<dataset>_<teacher>_batch<bs>_layer<l>-<identity hash>)")
    option(out, "--save_dir", default=os.path.join("ripsnet", "data"), result=False, help="parent of --out_dir")
    option(out, "--plan", action="store_true", result=False,
           help="print '<status> <folder> <why>' (new, finished, partial, conflict, pending) and exit")
    option(out, "--overwrite", action="store_true", result=False,
           help="delete the stage-2 files of an earlier run in --out_dir (named) and start afresh")
    out.add_argument("--shard_size", type=int, default=None, help="clouds per shard (default: ~32 MiB)")
    option(out, "--max_shards", type=int, default=None, help="debug: stop after this many new shards", result=False)
    option(out, "--device", default="auto", choices=("auto", "cpu", "cuda"), result=False)
    option(out, "--no_progress", action="store_true", help="hide the progress bars", result=False)
    return p


def cloud_source(args):
    """The clouds (``--pcd``, or the teacher's embeddings) -> ``(source, the config the manifest records)``."""
    from datasets import build_datasets
    from engine.distributed import pick_device
    from models import load_model
    from pcd.sources import ArrayCloudSource, TeacherCloudSource
    from topkd_io import file_identity

    if args.pcd:
        source = ArrayCloudSource(args.pcd)
        return source, {"source": source.config(), "dataset": args.dataset, "layer": None,
                        "batch_size": source.points, "passes": None, "seed": args.seed}
    options = {"image_size": args.image_size} if args.image_size else {}
    data = build_datasets(args.dataset, args.data_root, download=False, train_augment=True, **options)
    model, arch, _ = load_model(args.path_t, arch=args.model_t, num_classes=data.num_classes,
                                in_channels=data.in_channels)
    identity = {"teacher": file_identity(args.path_t), "arch": arch, "num_classes": data.num_classes}
    source = TeacherCloudSource(model, data.train, batch=args.batch_size, passes=args.passes,
                                layer=args.layer, seed=args.seed, device=pick_device(args.device).type,
                                workers=args.num_workers, identity=identity, teacher_bn=args.teacher_bn,
                                data_on_device=args.data_on_device)
    config = {"source": source.config(), "dataset": args.dataset, "image_size": data.image_size,
              "layer": args.layer, "batch_size": args.batch_size, "passes": args.passes, "seed": args.seed,
              "teacher_bn": args.teacher_bn}
    return source, config


def parse(argv: Optional[Sequence[str]] = None):
    """Parse, find the teacher (or the --pcd file) and name the output folder -> ``(args, identity, inputs)``."""
    import numpy as np

    from datasets import data_fingerprint
    from engine.config import check_args
    from engine.record import identity_of, input_sha256
    from models.pretrained import resolve_teacher_path
    from models.loading import teacher_and_arch
    from pcd.generate import check_dims

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_stage(args)  # logging, threads
    check_args(args)
    args.dims = check_dims(args.dims)
    if args.pcd is not None and (args.path_t is not None or args.teacher_weights is not None):
        raise TopKDError("pass either a teacher (--path_t / --teacher_weights) or --pcd (ready clouds .npy), "
                         "not both")
    if args.pcd is not None:
        if not os.path.isfile(args.pcd) and not args.plan:
            raise FileNotFoundError(f"--pcd file {args.pcd} not found; pass a .npy array [num_clouds, N, D]")
        inputs = {"pcd": args.pcd}
        name, points = os.path.splitext(os.path.basename(args.pcd))[0], "?"  # "?": unreadable (the source says why)
        with contextlib.suppress(OSError, ValueError, IndexError):  # points per cloud, from the array's header
            points = int(np.load(args.pcd, mmap_mode="r", allow_pickle=False).shape[1])
    else:
        args.dataset = args.dataset or "cifar100"
        if args.teacher_weights:
            args.path_t = resolve_teacher_path(args.path_t, args.model_t, args.teacher_weights)
        args.path_t, args.model_t = teacher_and_arch(args.path_t, args.model_t, args.dataset, args.teacher_trial,
                                                     args.plan)
        inputs = {"path_t": args.path_t}
        name, points = args.model_t, args.batch_size
    hashes = {k: input_sha256(v) for k, v in inputs.items()}  # a missing teacher: None (pending)
    if args.pcd is None:  # the training images it embeds
        hashes["data_root"] = data_fingerprint(args.dataset, args.data_root, must_exist=not args.plan)
    identity = identity_of(parser, vars(args), hashes)
    args.out_dir = args.out_dir or os.path.join(
        args.save_dir, f"{args.dataset or 'pcd'}_{name}_batch{points}_layer{args.layer}-{identity.hash}")
    return args, identity, inputs


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Run stage 2 -> its manifest."""
    from engine.distributed import pick_device
    from engine.record import plan_run, provenance
    from pcd.generate import generate
    from pcd.manifest import stage2_state
    from topkd_io import pinned_command

    args, identity, inputs = parse(argv)  # hashes the input files: may take a while
    # the folder, or why to stop here; an unfinished one is continued
    run = plan_run(args.out_dir, identity, functools.partial(stage2_state, args.out_dir, identity), inputs,
                   plan=args.plan, overwrite=args.overwrite, self_resuming=True, flag="--out_dir", what="stage-2",
                   files=("manifest.yaml", "shards", "pi_dim*.npy"))
    if run.stop:
        return run.outcome
    source, config = cloud_source(args)
    # the command line the manifest records (readers print it to rebuild the folder), --out_dir pinned
    words = ["python", "generate_PCD_PI.py", *(sys.argv[1:] if argv is None else argv)]
    command = pinned_command(shlex.join(words), "--out_dir", args.out_dir, drop=("--max_shards",))
    record = {"identity": identity.to_dict(), "provenance": provenance(inputs, pick_device(args.device).type)}
    with run.claim():  # the folder's lock while the shards are written
        manifest = generate(source, args.out_dir, config, dims=args.dims, shard_size=args.shard_size,
                            max_shards=args.max_shards, n_jobs=args.n_jobs, progress=not args.no_progress,
                            command=command, record=record)
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
