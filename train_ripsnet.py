"""Stage 3: train a RipsNet to predict the persistence images of a stage-2 folder (TopKD).

    python train_ripsnet.py --data_dir ripsnet/data/cifar100_resnet56_batch64_layer-1-<hash> --dim 0 --operator mean
    python train_ripsnet.py            # the official README: the one complete stage-2 folder under ripsnet/data

Writes ``ripsnet/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>_<pooling>-<identity hash>/`` (or ``--run_dir``): ``<pooling>_best.pth``
(for train_student.py; read by ``topology.ripsnet.load_ripsnet``), ``<pooling>_last.pth`` (``--resume``),
``config.yaml``, ``summary.yaml`` and ``tb/``. Prints the validation MSE and the error of the
RipsNet images against the exact ones on the held-out clouds.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Optional, Sequence

from engine.stage import add_stage_args, setup_stage
from topkd_io import run_cli


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
    p.add_argument("--data_dir", default=None,
                   help="folder written by generate_PCD_PI.py (default: the one complete stage-2 folder under "
                        "ripsnet/data, of --model_t / --dataset when given)")
    p.add_argument("--model_t", default=None, help="without --data_dir: take the stage-2 folder of this teacher")
    p.add_argument("--dataset", default=None, help="without --data_dir: take the stage-2 folder of this data set")
    p.add_argument("--dim", type=int, default=0, help="homology dim of the images to learn (0 or 1)")
    p.add_argument("--operator", "--pooling", dest="pooling", default="mean", choices=("mean", "sum"))
    p.add_argument("--units", type=_units, default=None,
                   help="the 8 widths D,a,b,c,50,100,200,R*R, comma-separated (default: the table for the feature width D)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--val_batch_size", type=int, default=32)
    p.add_argument("--val_fraction", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=1000, help="maximum epochs (early stopping ends sooner)")
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--min_delta", type=float, default=0.0, help="smallest validation-MSE drop that counts")
    p.add_argument("--seed", type=int, default=0)
    add_stage_args(p, 0, "DataLoader workers")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--run_dir", default=None)
    p.add_argument("--save_dir", default="ripsnet", help="parent of the default run folder")
    p.add_argument("--resume", action="store_true", help="continue from <run_dir>/<pooling>_last.pth")
    p.add_argument("--resume_override", action="store_true",
                   help="with --resume: apply changed options (lr, batch, seed, data, ...) instead of refusing them")
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--no_verify", action="store_true",
                   help="skip the SHA-256 check of the stage-2 files (sizes and the manifest's own checksum are "
                        "still checked; logged)")
    from engine.config import add_folder_args

    add_folder_args(p)
    return p


def default_run_name(data_dir: str, dim: int, pooling: str) -> str:
    """``<dataset>_<teacher>_batch<bs>_<layer>_dim<k>_<pooling>`` from the stage-2 manifest (the run folder adds
    the identity hash); for a stage-2 folder not made yet, ``<its name>_dim<k>_<pooling>``."""
    from pcd.manifest import read_manifest
    from pcd.ripsnet_paths import stage3_run_name

    if not os.path.isfile(os.path.join(data_dir, "manifest.yaml")):
        return f"{os.path.basename(os.path.normpath(data_dir))}_dim{dim}_{pooling}"
    cfg = read_manifest(data_dir)["config"]
    src = cfg.get("source", {})
    teacher = src.get("arch") or os.path.splitext(os.path.basename(src.get("file", {}).get("path", "pcd")))[0]
    dataset = cfg.get("dataset") or "pcd"
    return stage3_run_name(dataset, teacher, cfg.get("batch_size"), cfg.get("layer"), dim) + f"_{pooling}"


def data_identity(data_dir: str, dim: int):
    """The stage-2 data this run reads, as one SHA-256: the stage-2 identity hash and the recorded SHA-256 of
    ``pi_dim<k>.npy`` (None while the folder does not exist: a planned run; a folder that is unfinished or
    lacks that dim gets a value, and the stage's own reader says what is wrong with it)."""
    import hashlib

    from pcd.manifest import read_manifest

    from engine.identity import input_sha256

    if not os.path.isfile(os.path.join(data_dir, "manifest.yaml")):
        return None
    try:
        manifest = read_manifest(data_dir)
    except (OSError, ValueError):  # damaged or edited: the stage's reader says so (with the rebuild command)
        return input_sha256(os.path.join(data_dir, "manifest.yaml"))
    entry = (manifest.get("pi") or {}).get(dim) or (manifest.get("pi") or {}).get(str(dim)) or {}
    stage2 = (manifest.get("identity") or {}).get("hash", "")
    images = entry.get("sha256") if manifest.get("complete") else "unfinished"
    return hashlib.sha256(f"{stage2}:{images}".encode()).hexdigest()


RIPSNET_NOT_RESULT = ("model_t", "dataset")  # only choose the stage-2 folder


def prepare(argv: Optional[Sequence[str]] = None):
    """Parse, find the stage-2 folder and name the run folder -> ``(args, identity, inputs)``; trains nothing."""
    from engine.identity import Identity, with_hash
    from pcd.manifest import find_stage2

    from engine.config import check_seed, check_text_options
    from topkd_io import check_number

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_stage(args)  # logging, threads
    check_text_options(args, parser)
    check_seed(args.seed)
    check_number(args.lr, "--lr", low=0, low_open=True)
    check_number(args.min_delta, "--min_delta", low=0)
    check_number(args.val_fraction, "--val_fraction", low=0, low_open=True, high=1, high_open=True)
    if args.data_dir is None:
        args.data_dir = find_stage2(arch=args.model_t, dataset=args.dataset)
    elif not os.path.isdir(args.data_dir) and not args.plan:
        raise FileNotFoundError(f"--data_dir {args.data_dir} not found; run generate_PCD_PI.py first")
    inputs = {"data_dir": args.data_dir}
    identity = Identity.of(vars(args), {"data_dir": data_identity(args.data_dir, args.dim)},
                           not_result=RIPSNET_NOT_RESULT)
    if not args.run_dir:
        from topkd_io import check_output_dir

        if not args.plan:
            check_output_dir(args.save_dir, "--save_dir")
        args.run_dir = os.path.join(args.save_dir, with_hash(default_run_name(args.data_dir, args.dim, args.pooling),
                                                             identity))
    return args, identity, inputs


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    import torch

    from engine.run_folder import check_resume_inputs, claim, read_stored_identity
    from pcd.ripsnet_train import RipsNetTrainConfig, RipsNetTrainer, ripsnet_state, ripsnet_files
    from topkd_io import check_output_dir

    args, identity, inputs = prepare(argv)
    run_dir = args.run_dir

    def state_of():
        return ripsnet_state(run_dir, identity, args.pooling)

    if args.plan:
        state = state_of()
        print(state.line(), flush=True)
        return {"plan": state.status, "run_dir": run_dir, "detail": state.detail}
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    check_output_dir(run_dir, "--run_dir")
    with claim(run_dir, state_of, {}, flag="--run_dir", what="RipsNet run", files=ripsnet_files(args.pooling),
               resume=args.resume, overwrite=args.overwrite, skip_finished=args.skip_finished) as outcome:
        if outcome.skip:
            return {"skipped": True, "run_dir": run_dir, "checkpoint": os.path.join(run_dir, f"{args.pooling}_best.pth")}
        resume = args.resume or outcome.resume
        if resume:
            check_resume_inputs(read_stored_identity(os.path.join(run_dir, "config.yaml")), identity, run_dir)
        from engine.provenance import provenance

        extra = {"identity": identity.to_dict(),
                 "provenance": provenance({"data_dir": os.path.join(args.data_dir, "manifest.yaml")}, device)}
        cfg = RipsNetTrainConfig(data_dir=args.data_dir, dim=args.dim, pooling=args.pooling, units=args.units,
                                 lr=args.lr, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                                 val_fraction=args.val_fraction, epochs=args.epochs, patience=args.patience,
                                 min_delta=args.min_delta, seed=args.seed, workers=args.num_workers, device=device,
                                 run_dir=run_dir, resume=resume, resume_override=args.resume_override,
                                 progress=not args.no_progress, extra=extra,
                                 verify=not args.no_verify)
        summary = RipsNetTrainer(cfg).fit()
    h = summary["held_out"]
    print(f"best validation MSE {summary['best_val_mse']:.4e} (epoch {summary['best_epoch']} of "
          f"{summary['epochs_run']}); held-out images ({summary['n_val']} clouds) vs exact: mean abs "
          f"{h['mean_abs']:.4e}, max abs {h['max_abs']:.4e}, relative L2 {h['rel_l2']:.4e}; "
          f"checkpoint {summary['checkpoint']}", flush=True)
    return summary


if __name__ == "__main__":
    run_cli(main)
