"""Topology metrics of any teacher/student checkpoint pair, on the fixed probe batches of every student run.

    python tools/topo_metrics.py --path_t T.pth --path_s S.pth [--dataset digits] [--out topo.yaml]

Prints one line (``key value`` pairs) and writes them, with what they mean, to a small YAML file
(``--out``, default ``<student folder>/topo_metrics.yaml``). The logic is `engine.topo_eval.measure_checkpoints`:
both networks in eval mode, the same fixed test items as `train_student.py`'s measurement, persistence-image
parameters fitted on the teacher's probe diagrams. A teacher and student of other class counts (or another
data set's) are refused; a network trained at another image size than the one measured is warned about.
"""
import argparse
import os
from typing import Any, Dict, Optional, Sequence

import torch

from engine.config import plain
from engine.topo_eval import DEFAULT_BATCH_SIZE, DEFAULT_BATCHES, measure_checkpoints
from topkd_io import TopKDError, check_output_file, write_yaml
from topology.metrics import NORMALIZATIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Topology metrics of a teacher/student checkpoint pair.")
    p.add_argument("--path_t", required=True, help="teacher checkpoint")
    p.add_argument("--path_s", required=True, help="student checkpoint")
    p.add_argument("--model_t", default=None, help="teacher architecture when the checkpoint does not name it")
    p.add_argument("--model_s", default=None, help="student architecture when the checkpoint does not name it")
    p.add_argument("--dataset", default=None, help="data set (default: the teacher checkpoint's)")
    p.add_argument("--data_root", default="./data")
    p.add_argument("--image_size", type=int, default=None,
                   help="image side (default: the teacher's); a network trained at another size is warned about")
    p.add_argument("--layer_t", type=int, default=-1, help="teacher feature index (-1 = the embedding)")
    p.add_argument("--layer_s", type=int, default=None, help="student feature index (default: --layer_t)")
    p.add_argument("--batches", type=int, default=DEFAULT_BATCHES)
    p.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--dims", type=int, nargs="+", default=[0], choices=(0, 1))
    p.add_argument("--normalize", default="diam", choices=NORMALIZATIONS)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", default=None, help="YAML file written (default: <student folder>/topo_metrics.yaml)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = build_parser().parse_args(argv)
    for flag, path in (("--path_t", args.path_t), ("--path_s", args.path_s)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{flag} {path} not found; pass a checkpoint file")
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise TopKDError("--device cuda was given but no CUDA device is available; use --device cpu")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.path_s)), "topo_metrics.yaml")
    check_output_file(out, "--out")
    result = measure_checkpoints(args.path_t, args.path_s, args.dataset, args.data_root, args.image_size,
                                 args.layer_t, args.layer_s, args.batches, args.batch_size, args.dims,
                                 args.normalize, args.device, args.model_t, args.model_s)
    result = {"teacher_checkpoint": os.path.abspath(args.path_t), "student_checkpoint": os.path.abspath(args.path_s),
              **result}
    write_yaml(out, plain(result))
    print(" ".join(f"{k} {v:.6g}" for k, v in result["metrics"].items()) + f"  -> {out}", flush=True)
    return result


if __name__ == "__main__":
    from topkd_io import run_cli

    run_cli(main)
