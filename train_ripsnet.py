"""Stage 3: train a RipsNet to predict the persistence images of a stage-2 folder (TopKD).

    python train_ripsnet.py --data_dir ripsnet/data/cifar100_resnet56_batch64_layer-1-<hash> --dim 0 --operator mean
    python train_ripsnet.py            # the official README: the one complete stage-2 folder under ripsnet/data

Writes ``ripsnet/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>_<pooling>-<identity hash>/`` (or ``--run_dir``):
``<pooling>_best.pth`` (for train_student.py), ``<pooling>_last.pth`` (``--resume``), ``config.yaml``,
``summary.yaml`` and ``tb/``; logs the validation MSE and the error against the exact images of held-out clouds.
"""
import argparse
import functools
import logging
import os
from typing import Any, Dict, Optional, Sequence, Tuple

from engine.record import option
from engine.stage import add_stage_args, setup_stage
from topkd_io import run_cli

log = logging.getLogger("train_ripsnet")  # by name: run as a script, __name__ is "__main__"


def _units(text: str):
    try:
        units = [int(u) for u in str(text).replace(" ", "").split(",") if u]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--units must be comma-separated integers, got {text!r}") from None
    if not units or any(u < 1 for u in units):
        raise argparse.ArgumentTypeError(f"--units must be positive integers, got {text!r}")
    return units


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a RipsNet on stage-2 point clouds and persistence images.")
    option(p, "--data_dir", default=None, result=False,  # an input: in the identity by its content
           help="folder written by generate_PCD_PI.py (default: the one complete stage-2 folder under "
                "ripsnet/data, of --model_t / --dataset when given)")
    option(p, "--model_t", default=None, result=False, help="without --data_dir: the stage-2 folder of this teacher")
    option(p, "--dataset", default=None, result=False, help="without --data_dir: the stage-2 folder of this data set")
    p.add_argument("--dim", type=int, default=0, help="homology dim of the images to learn (0 or 1)")
    p.add_argument("--operator", "--pooling", dest="pooling", default="mean", choices=("mean", "sum"))
    p.add_argument("--units", type=_units, default=None,
                   help="the 8 widths D,a,b,c,50,100,200,R*R, comma-separated (default: the table for the width D)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--val_batch_size", type=int, default=32)
    p.add_argument("--val_fraction", type=float, default=0.25)
    option(p, "--epochs", type=int, default=1000, resume="continue", help="maximum epochs (early stopping)")
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--min_delta", type=float, default=0.0, help="smallest validation-MSE drop that counts")
    p.add_argument("--seed", type=int, default=0)
    add_stage_args(p, 0, "DataLoader workers")
    option(p, "--device", default="auto", choices=("auto", "cpu", "cuda"), result=False)
    option(p, "--run_dir", default=None, result=False)
    option(p, "--save_dir", default="ripsnet", help="parent of the default run folder", result=False)
    option(p, "--resume", action="store_true", help="continue from <run_dir>/<pooling>_last.pth", result=False)
    option(p, "--resume_override", action="store_true", result=False,
           help="with --resume: apply changed options (lr, batch, seed, data, ...) instead of refusing them")
    option(p, "--no_progress", action="store_true", result=False)
    option(p, "--no_verify", action="store_true", result=False,
           help="skip the SHA-256 check of the stage-2 files (sizes and the manifest's checksum are still checked)")
    from engine.config import add_folder_args

    add_folder_args(p)
    return p


def stage2_data(data_dir: str, dim: int, pooling: str) -> Tuple[str, Optional[str]]:
    """-> ``(run name, data hash)`` of the stage-2 folder read. The name: ``<dataset>_<teacher>_batch<bs>_<layer>_
    dim<k>_<pooling>`` from its manifest (the run folder adds the identity hash); the hash: of the stage-2 identity
    and the recorded SHA-256 of ``pi_dim<k>.npy``. A folder not made yet: its own name and None (a planned run);
    a damaged, unfinished or dim-less one still gets a hash, and the stage's own reader says what is wrong."""
    import hashlib

    from engine.record import input_sha256
    from pcd.manifest import read_manifest
    from pcd.ripsnet_paths import stage3_run_name

    path, name = os.path.join(data_dir, "manifest.yaml"), f"{os.path.basename(os.path.normpath(data_dir))}_dim{dim}"
    if not os.path.isfile(path):
        return f"{name}_{pooling}", None
    try:
        manifest = read_manifest(data_dir)
    except (OSError, ValueError):  # damaged or edited: the stage's reader says so (with the rebuild command)
        return f"{name}_{pooling}", input_sha256(path)
    cfg, src, pi = manifest["config"], manifest["config"].get("source", {}), manifest.get("pi") or {}
    teacher = src.get("arch") or os.path.splitext(os.path.basename(src.get("file", {}).get("path", "pcd")))[0]
    name = stage3_run_name(cfg.get("dataset") or "pcd", teacher, cfg.get("batch_size"), cfg.get("layer"), dim)
    images = (pi.get(dim) or pi.get(str(dim)) or {}).get("sha256") if manifest.get("complete") else "unfinished"
    stage2 = (manifest.get("identity") or {}).get("hash", "")
    return f"{name}_{pooling}", hashlib.sha256(f"{stage2}:{images}".encode()).hexdigest()


def parse(argv: Optional[Sequence[str]] = None):
    """Parse, find the stage-2 folder and name the run folder -> ``(args, identity)``; trains nothing."""
    from engine.config import check_args
    from engine.record import identity_of
    from pcd.manifest import find_stage2
    from topkd_io import check_number

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_stage(args)  # logging, threads
    check_args(args)
    check_number(args.lr, "--lr", low=0, low_open=True)
    check_number(args.min_delta, "--min_delta", low=0)
    check_number(args.val_fraction, "--val_fraction", low=0, low_open=True, high=1, high_open=True)
    if args.data_dir is None:
        args.data_dir = find_stage2(arch=args.model_t, dataset=args.dataset)
    elif not os.path.isdir(args.data_dir) and not args.plan:
        raise FileNotFoundError(f"--data_dir {args.data_dir} not found; run generate_PCD_PI.py first")
    name, data_hash = stage2_data(args.data_dir, args.dim, args.pooling)
    identity = identity_of(parser, vars(args), {"data_dir": data_hash})
    args.run_dir = args.run_dir or os.path.join(args.save_dir, f"{name}-{identity.hash}")
    return args, identity


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    from engine.record import plan_run, provenance
    from engine.distributed import pick_device
    from pcd.ripsnet_train import RipsNetTrainConfig, RipsNetTrainer, ripsnet_files, ripsnet_state

    args, identity = parse(argv)
    run = plan_run(args.run_dir, identity, functools.partial(ripsnet_state, args.run_dir, identity, args.pooling), {},
                   plan=args.plan, resume=args.resume, overwrite=args.overwrite, skip_finished=args.skip_finished,
                   parent=(args.save_dir, "--save_dir"), what="RipsNet run", files=ripsnet_files(args.pooling))
    if run.stop:
        return {**run.outcome, "checkpoint": os.path.join(args.run_dir, f"{args.pooling}_best.pth")}
    device = pick_device(args.device).type
    extra = {"identity": identity.to_dict(),
             "provenance": provenance({"data_dir": os.path.join(args.data_dir, "manifest.yaml")}, device)}
    cfg = RipsNetTrainConfig(data_dir=args.data_dir, dim=args.dim, pooling=args.pooling, units=args.units,
                             lr=args.lr, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                             val_fraction=args.val_fraction, epochs=args.epochs, patience=args.patience,
                             min_delta=args.min_delta, seed=args.seed, workers=args.num_workers, device=device,
                             run_dir=args.run_dir, resume=bool(run.resume), resume_override=args.resume_override,
                             progress=not args.no_progress, extra=extra, verify=not args.no_verify)
    trainer = RipsNetTrainer(cfg)  # reads and checks the stage-2 data
    with run.claim():  # the folder's lock while the run writes it
        summary = trainer.fit()
    log.info("best validation MSE {best_val_mse:.4e} (epoch {best_epoch} of {epochs_run}); held-out images ({n_val} "
             "clouds) vs exact: mean abs {held_out[mean_abs]:.4e}, max abs {held_out[max_abs]:.4e}, relative L2 "
             "{held_out[rel_l2]:.4e}; checkpoint {checkpoint}".format(**summary))
    return summary


if __name__ == "__main__":
    run_cli(main)
