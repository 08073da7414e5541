"""Time whole epochs (train + test) of the real trainer, plain path against fast path, on synthetic
CIFAR-100-shaped data (uint8 32x32x3 images held like torchvision's CIFAR set, 100 classes).

Plain path: torchvision transforms per PIL image in a DataLoader (``--num_workers``), float32.
Fast path: ``--data_on_device`` (the set on the device, batched crop/flip/normalise) and, on CUDA,
``--compile --amp --channels_last`` (CUDA graphs, bf16, fused SGD, static batches).
Configs: ``teacher`` (CE), ``kd``, ``kd_topkd`` (KD + TopKD through a random 64-d RipsNet),
``kd_topkd_exact`` (KD + exact H0 persistence images). For each: images/s of training, seconds per epoch
(train + test; checkpoints and logs excluded), fast/plain speed-up, peak GPU memory, the device; then the
ratios TopKD/KD and exact/TopKD of the fast path. The first ``--warmup`` epochs (compilation) are
not timed. Printed, never asserted.

    .venv/bin/python benchmarks/bench_epoch.py                       # CUDA: 50k/10k, resnet56 -> resnet20
    .venv/bin/python benchmarks/bench_epoch.py --device cpu    # CPU: 256/128 images, resnet20 -> resnet8, < 1 min
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch

from datasets import transforms as tf
from datasets.cifar import IndexedCIFAR100
from distiller import get_distiller
from distiller.topkd import ExactH0PI, TopologyTerm
from engine.config import add_data_args, add_training_args, parse_config
from engine.trainer import Trainer
from models import model_dict

CONFIGS = ("teacher", "kd", "kd_topkd", "kd_topkd_exact")


class SyntheticCIFAR100(IndexedCIFAR100):
    """torchvision's CIFAR-100 class over random in-memory pixels: ``data`` uint8 ``[n, 32, 32, 3]``,
    ``targets`` ``[n]``. Same item path (PIL image, transforms) as the real set; no files read."""

    def __init__(self, n: int, transform, seed: int):  # noqa: D401 (torchvision's loader is skipped on purpose)
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = [int(t) for t in rng.integers(0, 100, n)]
        self.transform, self.target_transform = transform, None


def pi_params_for(teacher: torch.nn.Module, images: torch.Tensor):
    """PIParams fitted (the TopKD rule) on exact H0 diagrams of the teacher's embeddings of 4 batches."""
    from topology.point_cloud_pi import PIParams
    from topology.persistence import rips_h0_deaths

    with torch.no_grad():
        feats, _ = teacher.eval()(images, is_feat=True)
    clouds = feats[-1].reshape(-1, 64, feats[-1].shape[-1]).double().numpy()
    deaths = np.asarray(rips_h0_deaths(clouds))
    return PIParams.fit([np.stack([np.zeros_like(d), d], axis=1) for d in deaths])


def build_distiller(config: str, args, pi_params):
    torch.manual_seed(0)
    teacher = model_dict[args.teacher](num_classes=100)
    if config == "teacher":
        return get_distiller("vanilla")(teacher)
    student = model_dict[args.student](num_classes=100)
    d = get_distiller("kd")(student, teacher, gamma=1.0, alpha=1.0)
    if config == "kd_topkd":
        from topology.ripsnet import RipsNet

        pi = RipsNet(d.feat_shapes_t[-1][-1], pooling="mean")
        d.topology = TopologyTerm(pi, d.feat_shapes_s, d.feat_shapes_t, 5.0)
    elif config == "kd_topkd_exact":
        d.topology = TopologyTerm(ExactH0PI(pi_params), d.feat_shapes_s, d.feat_shapes_t, 5.0)
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
    times: List[float] = []
    for epoch in range(1, args.warmup + args.epochs + 1):
        if cuda:
            torch.cuda.synchronize()
            if epoch == args.warmup + 1:
                torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.train_epoch(epoch)
        if cuda:
            torch.cuda.synchronize()
        mid = time.perf_counter()
        trainer.evaluate(trainer.test_loader)
        if cuda:
            torch.cuda.synchronize()
        if epoch > args.warmup:
            times.append((mid - start, time.perf_counter() - start))
    train_s = float(np.median([t for t, _ in times]))
    epoch_s = float(np.median([e for _, e in times]))
    seen = len(trainer.train_loader) * trainer.batch_size
    return {"img_s": seen / train_s, "epoch_s": epoch_s,
            "mem": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    p.add_argument("--n_train", type=int, default=None, help="default 50000 on CUDA, 256 on the CPU")
    p.add_argument("--n_test", type=int, default=None, help="default 10000 on CUDA, 128 on the CPU")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--teacher", default=None, help="default resnet56 on CUDA, resnet20 on the CPU")
    p.add_argument("--student", default=None, help="default resnet20 on CUDA, resnet8 on the CPU")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs (median); default 2 on CUDA, 1 on CPU")
    p.add_argument("--warmup", type=int, default=None, help="untimed epochs first (compilation); default 1 CUDA, 0 CPU")
    p.add_argument("--num_workers", type=int, default=None, help="plain path loader workers (default 8 CUDA, 0 CPU)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("no CUDA device available; use --device cpu")
    args.n_train = args.n_train or (50000 if cuda else 256)
    args.n_test = args.n_test or (10000 if cuda else 128)
    args.teacher = args.teacher or ("resnet56" if cuda else "resnet20")
    args.student = args.student or ("resnet20" if cuda else "resnet8")
    args.warmup = (1 if cuda else 0) if args.warmup is None else args.warmup
    args.epochs = args.epochs or (2 if cuda else 1)
    args.num_workers = 8 if args.num_workers is None and cuda else (args.num_workers or 0)
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
