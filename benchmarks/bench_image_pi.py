"""Speed of TGD image persistence images (topology/image_pi.py) on this machine; prints, asserts nothing.

    .venv/bin/python benchmarks/bench_image_pi.py [--images 256] [--data_root ./data]

Uses real CIFAR-10 training images when `<data_root>/cifar-10-batches-py` exists, otherwise synthetic
8-bit 32x32 RGB images (smoothed noise, CIFAR-like local structure). Reports images/s of the union-find
H0, of the persistence-image step and of the whole, a gudhi baseline (SimplexTree lower-star H0 +
PersistenceImage) on a few images, and the projected time for CIFAR-10's 60,000 images.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from topology.image_pi import (ImagePIParams, _single_threaded_blas, diagram_images,  # noqa: E402
                               filter_diagram_points, image_pis, image_signals, lower_star_h0_batched)


def synthetic_images(n: int, seed: int = 0) -> np.ndarray:
    """`[n, 3, 32, 32]` 8-bit levels in [0, 1]: box-blurred noise plus a little pixel noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 36, 36))
    k = 5
    c = np.cumsum(np.cumsum(x, axis=2), axis=3)
    c = np.pad(c, ((0, 0), (0, 0), (1, 0), (1, 0)))
    blur = (c[:, :, k:, k:] - c[:, :, :-k, k:] - c[:, :, k:, :-k] + c[:, :, :-k, :-k]) / (k * k)
    blur = (blur - blur.min()) / (blur.max() - blur.min())
    img = np.clip(blur + 0.03 * rng.standard_normal(blur.shape), 0, 1)
    return np.round(img * 255) / 255


def cifar_images(root: str, n: int):
    folder = os.path.join(root, "cifar-10-batches-py")
    if not os.path.isdir(folder):
        return None
    import torchvision

    data = torchvision.datasets.CIFAR10(root, train=True, download=False).data[:n]
    return data.transpose(0, 3, 1, 2).astype(np.float64) / 255.0


def gudhi_pis(images: np.ndarray, params: ImagePIParams) -> float:
    """Seconds for the straightforward gudhi route on `images`."""
    import gudhi
    from gudhi.representations import PersistenceImage

    start = time.perf_counter()
    for sig in image_signals(images).reshape(-1, images.shape[2] * images.shape[3]):
        st = gudhi.SimplexTree()
        for i, v in enumerate(sig):
            st.insert([i], float(v))
        for i in range(len(sig) - 1):
            st.insert([i, i + 1], float(max(sig[i], sig[i + 1])))
        st.compute_persistence(persistence_dim_max=True)
        d = st.persistence_intervals_in_dimension(0)
        d = d[np.isfinite(d[:, 1]) & (d[:, 1] - d[:, 0] > params.min_lifetime)]
        if len(d):
            top = (d[:, 1] - d[:, 0]).max()
            PersistenceImage(bandwidth=params.bandwidth, weight=lambda x: x[1] / top,
                             resolution=[params.resolution] * 2, im_range=list(params.im_range)).fit_transform([d])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--gudhi_images", type=int, default=4)
    parser.add_argument("--data_root", default="./data")
    args = parser.parse_args()
    params = ImagePIParams()
    images = cifar_images(args.data_root, args.images)
    label = "CIFAR-10 train"
    if images is None:
        images, label = synthetic_images(args.images), "synthetic 8-bit 32x32 RGB"
    n = len(images)
    print(f"{n} images ({label}); 6 signals of 1024 values each")

    signals = image_signals(images).reshape(-1, 1024)
    t0 = time.perf_counter()
    births, deaths = lower_star_h0_batched(signals)
    t_h0 = time.perf_counter() - t0
    keep = filter_diagram_points(births, deaths, params)
    with _single_threaded_blas():
        t0 = time.perf_counter()
        for s in range(0, len(signals), 192):
            diagram_images(births[s:s + 192], deaths[s:s + 192], keep[s:s + 192], params)
        t_pi = time.perf_counter() - t0
    t0 = time.perf_counter()
    image_pis(images, params)
    t_all = time.perf_counter() - t0
    print(f"points kept per diagram: mean {keep.sum(1).mean():.1f}, max {keep.sum(1).max()}")
    print(f"union-find H0     : {n / t_h0:8.1f} images/s")
    print(f"persistence images: {n / t_pi:8.1f} images/s")
    print(f"image_pis (whole) : {n / t_all:8.1f} images/s (one process)")

    g = images[: args.gudhi_images]
    t_g = gudhi_pis(g, params)
    print(f"gudhi baseline    : {len(g) / t_g:8.1f} images/s -> ours is {(n / t_all) / (len(g) / t_g):.1f}x")
    cores = os.cpu_count() or 1
    for workers in sorted({1, cores}):
        print(f"projected CIFAR-10 60k with {workers} worker(s): {60000 / (n / t_all) / workers / 60:.1f} min "
              "(assumes linear scaling over idle cores)")


if __name__ == "__main__":
    main()
