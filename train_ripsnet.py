"""Stage 3: train a RipsNet to predict the persistence images of a stage-2 folder (TopKD).

    python train_ripsnet.py --data_dir ripsnet/data/cifar100_resnet56_batch64_layer-1 --dim 0 --operator mean

Writes ``ripsnet/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>/`` (or ``--run_dir``): ``<pooling>_best.pth``
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
    p.add_argument("--data_dir", required=True, help="folder written by generate_PCD_PI.py")
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
    return p


def default_run_dir(save_dir: str, data_dir: str, dim: int) -> str:
    """``<save_dir>/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>`` from the stage-2 manifest."""
    from pcd.manifest import read_manifest

    cfg = read_manifest(data_dir)["config"]
    src = cfg.get("source", {})
    teacher = src.get("arch") or os.path.splitext(os.path.basename(src.get("file", {}).get("path", "pcd")))[0]
    dataset = cfg.get("dataset") or "pcd"
    from pcd.ripsnet_paths import stage3_run_name

    return os.path.join(save_dir, stage3_run_name(dataset, teacher, cfg.get("batch_size"), cfg.get("layer"), dim))


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_stage(args)
    import torch

    from engine.config import check_seed, check_text_options
    from topkd_io import check_number

    check_text_options(args, parser)
    check_seed(args.seed)
    check_number(args.lr, "--lr", low=0, low_open=True)
    check_number(args.min_delta, "--min_delta", low=0)
    check_number(args.val_fraction, "--val_fraction", low=0, low_open=True, high=1, high_open=True)

    from pcd.ripsnet_train import RipsNetTrainConfig, RipsNetTrainer

    if not os.path.isdir(args.data_dir):
        raise FileNotFoundError(f"--data_dir {args.data_dir} not found; run generate_PCD_PI.py first")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    from topkd_io import check_output_dir

    if not args.run_dir:
        check_output_dir(args.save_dir, "--save_dir")
    run_dir = args.run_dir or default_run_dir(args.save_dir, args.data_dir, args.dim)
    check_output_dir(run_dir, "--run_dir")
    cfg = RipsNetTrainConfig(data_dir=args.data_dir, dim=args.dim, pooling=args.pooling, units=args.units,
                             lr=args.lr, batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                             val_fraction=args.val_fraction, epochs=args.epochs, patience=args.patience,
                             min_delta=args.min_delta, seed=args.seed, workers=args.num_workers, device=device,
                             run_dir=run_dir, resume=args.resume,
                             resume_override=args.resume_override, progress=not args.no_progress,
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
