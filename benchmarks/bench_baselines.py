"""Time one CPU training step of each baseline in `distiller/zoo/` against KD, resnet56 -> resnet20, batch 64.

Every method is built with its own defaults (the weights of its table); a method with a pre-training stage is timed
twice: its main step (``name``) and its pre-training step (``name:init``). Steps run round-robin, so background
load hits every method alike; the figure is the median step time and its ratio to KD's, never asserted.

    .venv/bin/python benchmarks/bench_baselines.py [--steps 10] [--threads 2]
"""
import argparse
import time

import numpy as np
import torch

from distiller import distiller_dict, method_names
from models import model_dict


def build(name: str, image_size: int):
    torch.manual_seed(0)
    teacher, student = model_dict["resnet56"](num_classes=100), model_dict["resnet20"](num_classes=100)
    d = distiller_dict[name](student, teacher, image_size=image_size).train()
    return d, torch.optim.SGD(d.learnable_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def one_step(d, opt, epoch: int, x, y, index) -> float:
    d.set_epoch(epoch)
    t0 = time.perf_counter()
    _, losses = d(x, y, index=index)
    opt.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    opt.step()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per method (after one warm-up step)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ["kd"] + [n for n in method_names() if distiller_dict[n].__module__.startswith("distiller.zoo.")]
    runs = {}
    for name in names:
        d, opt = build(name, 32)
        runs[name] = (d, opt, 1)
        if hasattr(d, "pretrain_loss"):
            runs[f"{name}:init"] = (*build(name, 32), -1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, 32, 32, generator=g)
    y, index = torch.randint(0, 100, (args.batch_size,), generator=g), torch.arange(args.batch_size)
    times = {k: [] for k in runs}
    for i in range(args.steps + 1):
        for k, (d, opt, epoch) in runs.items():
            t = one_step(d, opt, epoch, x, y, index)
            if i:
                times[k].append(t)
    kd = float(np.median(times["kd"]))
    print(f"CPU, {torch.get_num_threads()} threads, resnet56 -> resnet20, batch {args.batch_size}, median of "
          f"{args.steps} steps")
    for k, t in times.items():
        print(f"{k:>14}: {1000 * float(np.median(t)):8.1f} ms/step  {float(np.median(t)) / kd:5.2f}x KD", flush=True)


if __name__ == "__main__":
    main()
