"""Time whole epochs (train + test) of the real trainer, plain path against fast path, on synthetic
CIFAR-100-shaped data (uint8 32x32x3 images in torchvision's CIFAR class, 100 classes); printed, never asserted.

Plain path: torchvision transforms per PIL image in a DataLoader, float32. Fast path: ``--data_on_device`` and,
on CUDA, ``--compile --amp --channels_last``. Configs: ``teacher`` (CE), ``kd``, ``kd_topkd`` (a random 64-d
RipsNet), ``kd_topkd_exact`` (exact H0 images). For each: training images/s, s/epoch (the first ``--warmup``
epochs untimed), fast/plain speed-up, peak GPU memory; then the ratios TopKD/KD and exact/TopKD of both paths.

    .venv/bin/python benchmarks/bench_epoch.py                       # CUDA: 50k/10k, resnet56 -> resnet20
    .venv/bin/python benchmarks/bench_epoch.py --device cpu    # CPU: 256/128 images, resnet20 -> resnet8, < 1 min
"""
import argparse
import os
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

from datasets import transforms as tf
from datasets.cifar import IndexedCIFAR100
from distiller import get_distiller
from distiller.topkd import ExactH0PI, TopologyTerm
from engine.config import add_data_args, add_training_args, parse_config
from engine.trainer import Trainer
from models import model_dict
from topology.persistence import rips_diagrams
from topology.point_cloud_pi import PIParams
from topology.ripsnet import RipsNet

CONFIGS = ("teacher", "kd", "kd_topkd", "kd_topkd_exact")
CUDA_DEFAULTS = dict(n_train=50000, n_test=10000, teacher="resnet56", student="resnet20", epochs=2, warmup=1,
                     num_workers=8)
CPU_DEFAULTS = dict(n_train=256, n_test=128, teacher="resnet20", student="resnet8", epochs=1, warmup=0, num_workers=0)


class SyntheticCIFAR100(IndexedCIFAR100):
    """torchvision's CIFAR-100 class over random pixels ``[n, 32, 32, 3]`` (its item path; no files read)."""

    def __init__(self, n: int, transform, seed: int):  # torchvision's loader is skipped on purpose
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = [int(t) for t in rng.integers(0, 100, n)]
        self.transform, self.target_transform = transform, None


def pi_params_for(teacher: torch.nn.Module, images: torch.Tensor) -> PIParams:
    """PIParams fitted (the TopKD rule) on exact H0 diagrams of the teacher's embeddings of 64-image clouds."""
    with torch.no_grad():
        feats, _ = teacher.eval()(images, is_feat=True)
    return PIParams.fit(rips_diagrams(feats[-1].reshape(-1, 64, feats[-1].shape[-1]).double().numpy())[0])


def build_distiller(config: str, args, pi_params):
    torch.manual_seed(0)
    teacher = model_dict[args.teacher](num_classes=100)
    if config == "teacher":
        return get_distiller("vanilla")(teacher)
    student = model_dict[args.student](num_classes=100)
    d = get_distiller("kd")(student, teacher, gamma=1.0, alpha=1.0)
    if config != "kd":
        pi = RipsNet(d.feat_shapes_t[-1][-1], pooling="mean") if config == "kd_topkd" else ExactH0PI(pi_params)
        d.topology = TopologyTerm(pi, d.feat_shapes_s, d.feat_shapes_t, 5.0)
    return d


def run(config: str, fast: bool, args, data, pi_params, run_dir: str) -> Dict[str, float]:
    argv = ["--dataset", "cifar100", "--epochs", str(args.warmup + args.epochs), "--batch_size",
            str(args.batch_size), "--device", args.device, "--num_workers", str(args.num_workers),
            "--run_dir", run_dir, "--seed", "0"]
    if fast:
        argv += ["--data_on_device"] + (["--compile", "--amp", "--channels_last"] if args.device == "cuda" else [])
    parser = argparse.ArgumentParser()
    add_data_args(parser)
    add_training_args(parser)
    cfg = parse_config(parser, argv)
    cfg.arch, cfg.num_classes = config, 100
    trainer = Trainer(build_distiller(config, args, pi_params), data["train"], data["test"], cfg, run_dir)
    cuda = trainer.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    times: List[Tuple[float, float]] = []  # (train, train + test) seconds of each timed epoch
    for epoch in range(1, args.warmup + args.epochs + 1):
        sync()
        if cuda and epoch == args.warmup + 1:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        sync()
        mid = time.perf_counter()
        trainer.evaluate(trainer.test_loader)
        sync()
        if epoch > args.warmup:
            times.append((mid - start, time.perf_counter() - start))
    train_s, epoch_s = np.median(times, axis=0)
    return {"img_s": len(trainer.train_loader) * trainer.batch_size / train_s, "epoch_s": float(epoch_s),
            "mem": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    for name, kind, text in (("n_train", int, "training images"), ("n_test", int, "test images"),
                             ("teacher", str, "teacher"), ("student", str, "student"),
                             ("epochs", int, "timed epochs (median)"), ("warmup", int, "untimed epochs first"),
                             ("num_workers", int, "plain-path loader workers")):
        p.add_argument(f"--{name}", type=kind, default=None, help=f"{text} (default: CUDA {CUDA_DEFAULTS[name]}, "
                       f"CPU {CPU_DEFAULTS[name]})")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device available; use --device cpu")
    for name, value in (CUDA_DEFAULTS if cuda else CPU_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [c for c in args.configs.split(",") if c]
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")
    name = torch.cuda.get_device_name(0) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    mean, std = tf.CIFAR100_MEAN, tf.CIFAR100_STD
    data = {"train": SyntheticCIFAR100(args.n_train, tf.cifar_train(mean, std), seed=0),
            "test": SyntheticCIFAR100(args.n_test, tf.cifar_eval(mean, std), seed=1)}
    pi_params = None
    if "kd_topkd_exact" in configs:
        x = torch.from_numpy(data["train"].data[:256]).permute(0, 3, 1, 2).float().div(255)
        pi_params = pi_params_for(model_dict[args.teacher](num_classes=100), x)
    print(f"device: {name}; torch {torch.__version__}; {args.teacher} -> {args.student}, batch {args.batch_size}, "
          f"{args.n_train} train / {args.n_test} test synthetic CIFAR-100 images; {args.warmup} warm-up + "
          f"{args.epochs} timed epochs; plain path {args.num_workers} loader workers", flush=True)
    print("\n| config | plain img/s | plain s/epoch | fast img/s | fast s/epoch | speed-up | peak GPU mem (GiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for config in configs:
            plain = run(config, False, args, data, pi_params, os.path.join(tmp, f"{config}_plain"))
            fast = run(config, True, args, data, pi_params, os.path.join(tmp, f"{config}_fast"))
            results[config] = (plain, fast)
            mem = "n/a" if fast["mem"] is None else f"{plain['mem']:.2f} / {fast['mem']:.2f}"
            print(f"| {config} | {plain['img_s']:.0f} | {plain['epoch_s']:.2f} | {fast['img_s']:.0f} | "
                  f"{fast['epoch_s']:.2f} | {plain['epoch_s'] / fast['epoch_s']:.2f}x | {mem} |", flush=True)
    print()
    for a, b, goal in (("kd_topkd", "kd", "1.05"), ("kd_topkd_exact", "kd_topkd", "1.10")):
        if a in results and b in results:
            for label, k in (("plain", 0), ("fast", 1)):
                ratio = results[a][k]["epoch_s"] / results[b][k]["epoch_s"]
                print(f"{label} epoch {a}/{b} = {ratio:.3f} (goal <= {goal})")


if __name__ == "__main__":
    main()
