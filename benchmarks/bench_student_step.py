"""Time one student training step, resnet56 -> resnet20, batch 64, 32x32, 100 classes.

KD alone, KD + TopKD through a RipsNet (64-d, mean pooling), with exact H0 images, with exact H1 images: ms/step
per device and the ratios TopKD/KD (goal <= 1.05), exact/TopKD (<= 1.10), H1-exact/H0-exact (<= 3), never asserted;
then the topology term alone (forward + backward on one batch's features) of each variant, against TopKD's.

    .venv/bin/python benchmarks/bench_student_step.py [--quick] [--device cpu|cuda|all]
"""
import argparse
import time

import numpy as np
import torch

from distiller import get_distiller
from distiller.topkd import ExactH0PI, ExactH1PI, TopologyTerm
from models import model_dict
from topology.persistence import rips_diagrams
from topology.point_cloud_pi import PIParams
from topology.ripsnet import RipsNet


def build(variant: str, device: torch.device, cloud: torch.Tensor, image_size: int):
    """KD, with the topology term of ``variant`` (its exact images' parameters fitted on ``cloud``)."""
    torch.manual_seed(0)
    teacher, student = model_dict["resnet56"](num_classes=100), model_dict["resnet20"](num_classes=100)
    d = get_distiller("kd")(student, teacher, gamma=1.0, alpha=2.0, image_size=image_size)
    if variant != "kd":
        dim = 1 if variant == "exact_h1" else 0
        params = PIParams.fit(rips_diagrams(cloud.double().numpy(), dims=(dim,))[dim], homology_dim=dim)
        pi = RipsNet(64, pooling="mean") if variant == "topkd" else (ExactH1PI if dim else ExactH0PI)(params)
        d.topology = TopologyTerm(pi, d.feat_shapes_s, d.feat_shapes_t, 5.0)
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


def bench(device: torch.device, steps: int, warmup: int, batch: int, image_size: int, term_reps: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, image_size, image_size, generator=g)
    y = torch.randint(0, 100, (batch,), generator=g)
    index = torch.arange(batch)
    with torch.no_grad():
        feats, _ = model_dict["resnet56"](num_classes=100).eval()(x[:64], is_feat=True)
    cloud = feats[-1][None]  # one 64-point cloud of teacher embeddings
    x, y, index = x.to(device), y.to(device), index.to(device)
    variants = {v: build(v, device, cloud, image_size) for v in ("kd", "topkd", "exact", "exact_h1")}
    if steps:
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
        print(f"[{device.type}] H1-exact/H0-exact = {result['exact_h1'] / result['exact']:.3f}  (goal <= 3)",
              flush=True)
    bench_term(device, {v: d for v, (d, _) in variants.items() if v != "kd"}, x, term_reps)


def bench_term(device: torch.device, distillers, x: torch.Tensor, reps: int) -> None:
    """The topology term alone: forward and backward of each variant's term on the features of one batch (the
    networks run once, outside the timing), ``reps`` calls round-robin; ms per call and the ratios to TopKD's."""
    d = next(iter(distillers.values()))
    with torch.no_grad():
        feats_t, _ = d.teacher(x, is_feat=True)
        feats_s, _ = d.student(x, is_feat=True)
    times = {v: [] for v in distillers}
    for _ in range(reps + 1):  # the first call of each variant is a warm-up
        for v, dist in distillers.items():
            leaf = [f.detach().requires_grad_() for f in feats_s]
            if x.is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            dist.topology(leaf, feats_t).backward()
            if x.is_cuda:
                torch.cuda.synchronize()
            times[v].append(time.perf_counter() - t0)
    result = {v: float(np.median(t[1:])) for v, t in times.items()}
    for v, t in result.items():
        print(f"[{device.type}] term {v:>8}: {1000 * t:8.3f} ms/call (median of {reps}), "
              f"{t / result['topkd']:.2f}x TopKD's", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few steps (a smoke run, noisy ratios)")
    p.add_argument("--device", default="all", choices=("cpu", "cuda", "all"))
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--image_size", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="timed steps (0: time the topology term alone)")
    p.add_argument("--term_reps", type=int, default=50, help="timed calls of the topology term alone")
    args = p.parse_args(argv)
    steps = (3 if args.quick else 20) if args.steps is None else args.steps
    warmup = 1 if args.quick else 3
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device available")
    devices = [torch.device(d) for d in ("cpu", "cuda") if args.device in (d, "all")
               and (d == "cpu" or torch.cuda.is_available())]
    print(f"resnet56 -> resnet20, batch {args.batch_size}, {args.image_size}x{args.image_size}, "
          f"{steps} timed steps after {warmup} warm-up; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for device in devices:
        bench(device, steps, warmup, args.batch_size, args.image_size, args.term_reps)


if __name__ == "__main__":
    main()
