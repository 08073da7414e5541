"""Test top-1 / top-5 and per-class accuracy of any checkpoint, without training.

    python evaluate.py save_s_models/<run>/resnet20_best.pth                      # its run's data set, test split
    python evaluate.py resnet20_best.pth --dataset cifar100 --data_root ./data    # an official TopKD file
    python evaluate.py T163_S161_TGD.pth.tar --dataset cifar10                    # a TGD release
    python evaluate.py resnet34-b627a593.pth --dataset imagenet --data_root /data/imagenet
    python evaluate.py <run>/resnet8_best.pth --split val                          # the run's held-out part

The inputs are rebuilt as the checkpoint's run recorded them, unless given (`engine.evaluate`). Prints one
line; writes ``eval_<stem>-<sha8>_<dataset>_<split>.yaml`` beside the checkpoint in one of our run folders,
elsewhere only with ``--out FILE`` or ``--out FOLDER``; ``--no_save`` writes nothing.
"""
import argparse
from typing import Any, Dict, Optional, Sequence

from topkd_io import run_cli


def build_parser() -> argparse.ArgumentParser:
    from engine.evaluate import SPLITS

    p = argparse.ArgumentParser(description="Evaluate a checkpoint: test/validation top-1, top-5, per class.")
    p.add_argument("checkpoint", help="a .pth file: ours, official TopKD / RepDistiller, TGD's, torchvision's")
    p.add_argument("--model", default=None, help="architecture when the checkpoint and its file name do not say")
    p.add_argument("--dataset", default=None, help="data set (default: the one its run recorded, else cifar100)")
    p.add_argument("--data_root", default=None, help="default: the run's, else ./data")
    p.add_argument("--split", default="test", choices=SPLITS,
                   help="test: the test split (ImageNet: its validation set); val: the run's held-out part")
    p.add_argument("--val_fraction", type=float, default=None,
                   help="with --split val: the held-out fraction (default: the run's)")
    p.add_argument("--image_size", type=int, default=None, help="image side (default: the run's)")
    p.add_argument("--input", default=None, choices=("image", "pi"), help="pi: a PI teacher, on the image-PI cache")
    p.add_argument("--pi_root", default=None, help="with --input pi: the cache root (default: the run's)")
    p.add_argument("--pi_cache", default=None, help="with --input pi: a cache, as train_teacher.py --pi_cache")
    p.add_argument("--batch_size", type=int, default=None, help="default: the run's batch size, else 256")
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--out", default=None, help="result YAML, or a folder to hold it (default: beside the checkpoint "
                                               "in one of our run folders, else not written)")
    p.add_argument("--no_save", action="store_true", help="print only")
    p.add_argument("--path_t", default=None, help="a teacher checkpoint: add the topology metrics of the pair")
    p.add_argument("--model_t", default=None, help="the teacher's architecture when its checkpoint does not say")
    return p


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    from engine.evaluate import default_out, evaluate_checkpoint, summary_line, write_result

    options = build_parser().parse_args(argv)
    result = evaluate_checkpoint(options)
    out = None if options.no_save else options.out or default_out(result)
    path = write_result(result, out) if out else None
    print(summary_line(result, path, saved=bool(out) or options.no_save), flush=True)
    return result


if __name__ == "__main__":
    run_cli(main)
