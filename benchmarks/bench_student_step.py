"""Time one student training step, resnet56 -> resnet20, batch 64, 32x32, 100 classes.

Variants: KD alone; KD + TopKD through a RipsNet (64-d, mean pooling); KD + TopKD with exact H0
persistence images; KD + TopKD with exact H1 images (``--dim 1``: gudhi's persistence pairs, lengths from the
points). Prints ms/step per device and the ratios TopKD/KD (goal <= 1.05), exact/TopKD (goal <= 1.10) and
H1-exact/H0-exact (goal <= 3). Ratios are printed, never asserted.

    .venv/bin/python benchmarks/bench_student_step.py [--quick] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from distiller import get_distiller
from distiller.topkd import ExactH0PI, ExactH1PI, TopologyTerm
from models import model_dict


def pi_params_for(points: torch.Tensor, dim: int = 0):
    """PIParams fitted (the TopKD rule) on the exact H``dim`` diagrams of a few 64-point clouds."""
    from topology.point_cloud_pi import PIParams
    from topology.persistence import rips_diagrams

    return PIParams.fit(rips_diagrams(points.double().numpy(), dims=(dim,))[dim], homology_dim=dim)


def build(variant: str, device: torch.device, pi_params, image_size: int):
    torch.manual_seed(0)
    teacher, student = model_dict["resnet56"](num_classes=100), model_dict["resnet20"](num_classes=100)
    d = get_distiller("kd")(student, teacher, gamma=1.0, alpha=2.0, image_size=image_size)
    if variant == "topkd":
        from topology.ripsnet import RipsNet

        d.topology = TopologyTerm(RipsNet(64, pooling="mean"), d.feat_shapes_s, d.feat_shapes_t, 5.0)
    elif variant == "exact":
        d.topology = TopologyTerm(ExactH0PI(pi_params[0]), d.feat_shapes_s, d.feat_shapes_t, 5.0)
    elif variant == "exact_h1":
        d.topology = TopologyTerm(ExactH1PI(pi_params[1]), d.feat_shapes_s, d.feat_shapes_t, 5.0)
    d.to(device).train()
    opt = torch.optim.SGD(d.learnable_parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return d, opt


def one_step(d, opt, x, y, index) -> float:
    """Seconds of one full step (forward, backward, SGD update)."""
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    _, losses = d(x, y, index=index)
    loss = sum(losses.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench(device: torch.device, steps: int, warmup: int, batch: int, image_size: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 100, (batch,), generator=g)
    index = torch.arange(batch)
    with torch.no_grad():
        feats, _ = model_dict["resnet56"](num_classes=100).eval()(x[:64], is_feat=True)
    cloud = feats[-1][None]  # one 64-point cloud of teacher embeddings
    pi_params = {0: pi_params_for(cloud, 0), 1: pi_params_for(cloud, 1)}
    x, y, index = x.to(device), y.to(device), index.to(device)
    variants = {v: build(v, device, pi_params, image_size) for v in ("kd", "topkd", "exact", "exact_h1")}
    times = {v: [] for v in variants}
    for i in range(warmup + steps):  # round-robin, so background load hits every variant alike
        for v, (d, opt) in variants.items():
            t = one_step(d, opt, x, y, index)
            if i >= warmup:
                times[v].append(t)
    result = {v: float(np.median(t)) for v, t in times.items()}
    for v, t in result.items():
        print(f"[{device.type}] {v:>8}: {1000 * t:8.2f} ms/step (median of {steps})", flush=True)
    print(f"[{device.type}] TopKD/KD    = {result['topkd'] / result['kd']:.3f}  (goal <= 1.05)")
    print(f"[{device.type}] exact/TopKD = {result['exact'] / result['topkd']:.3f}  (goal <= 1.10)")
    print(f"[{device.type}] H1-exact/H0-exact = {result['exact_h1'] / result['exact']:.3f}  (goal <= 3)", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few steps (a smoke run, noisy ratios)")
    p.add_argument("--device", default="all", choices=("cpu", "cuda", "all"))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args(argv)
    steps = args.steps or (3 if args.quick else 20)
    warmup = 1 if args.quick else 3
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    elif args.device == "cuda":
        raise SystemExit("no CUDA device available")
    print(f"resnet56 -> resnet20, batch {args.batch_size}, {args.image_size}x{args.image_size}, "
          f"{steps} timed steps after {warmup} warm-up; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for device in devices:
        bench(device, steps, warmup, args.batch_size, args.image_size)


if __name__ == "__main__":
    main()
