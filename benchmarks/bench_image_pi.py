"""Speed of TGD image persistence images (topology/image_pi.py) on this machine; prints, asserts nothing.

    .venv/bin/python benchmarks/bench_image_pi.py [--images 256] [--loop_images 4] [--repeats 3] [--data_root ./data]

Real CIFAR-10 training images when ``<data_root>/cifar-10-batches-py`` exists, else synthetic 8-bit 32x32 RGB
ones. The official layout's images/s of the union-find H0, of the image step and of the whole, the ratio to a
per-image loop (gudhi's SimplexTree lower-star H0 per signal, then a persim-0.3-style image loop), and the
projected time for CIFAR-10's 60,000 images.
"""
import argparse
import os
import time

import numpy as np

from topology.image_pi import (ImagePIParams, _single_threaded_blas, diagram_images,
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


def _gudhi_h0(sig: np.ndarray, params: ImagePIParams) -> np.ndarray:
    import gudhi

    st = gudhi.SimplexTree()
    for i, v in enumerate(sig):
        st.insert([i], float(v))
    for i in range(len(sig) - 1):
        st.insert([i, i + 1], float(max(sig[i], sig[i + 1])))
    st.compute_persistence(persistence_dim_max=True)
    d = st.persistence_intervals_in_dimension(0)
    pers = d[:, 1] - d[:, 0]
    return d[np.isfinite(d[:, 1]) & (pers > params.min_persistence) & (pers > params.min_lifetime)]


def _persim_style_image(d: np.ndarray, params: ImagePIParams) -> np.ndarray:
    """persim 0.3 PersImage's per-point loop (minBD 0): CDF differences per point, outer product."""
    from scipy.stats import norm

    r, s = params.resolution, params.bandwidth
    top = params.im_range[1]
    dx = top / r
    lo = np.linspace(0, top, r)
    img = np.zeros((r, r))
    if len(d):
        pers = d[:, 1] - d[:, 0]
        for birth, p in zip(d[:, 0], pers):
            xs = norm.cdf(lo + dx, birth, s) - norm.cdf(lo, birth, s)
            ys = norm.cdf(lo + dx, p, s) - norm.cdf(lo, p, s)
            img += np.outer(xs, ys) * (p / pers.max())
    img = img.T[::-1]
    return img / img.max() if img.max() > 0 else img


def loop_pis(images: np.ndarray, params: ImagePIParams):
    """Seconds and float PIs `[n, 2C, R, R]` of the straightforward per-image, per-signal route."""
    start = time.perf_counter()
    signals = image_signals(images).astype(np.float32).astype(np.float64)  # as the official ripser holds them
    out = np.stack([[_persim_style_image(_gudhi_h0(sig, params), params) for sig in per_image]
                    for per_image in signals])
    return time.perf_counter() - start, out


def best_time(fn, repeats: int):
    """(fastest of `repeats` runs in seconds, the last result): the minimum is the least noisy on a
    shared machine."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bench(images: np.ndarray, loop_images: int, repeats: int = 3) -> float:
    n = len(images)
    params = ImagePIParams(quantize="none")
    signals = image_signals(images).reshape(-1, images.shape[2] * images.shape[3])
    t_h0, (births, deaths) = best_time(lambda: lower_star_h0_batched(signals), repeats)
    keep = filter_diagram_points(births, deaths, params)

    def all_images():
        for s in range(0, len(signals), 192):
            diagram_images(births[s:s + 192], deaths[s:s + 192], keep[s:s + 192], params)

    with _single_threaded_blas():
        t_pi, _ = best_time(all_images, repeats)
    t_all, ours = best_time(lambda: image_pis(images, params), repeats)
    t_loop, ref = loop_pis(images[:loop_images], params)
    ratio = (n / t_all) / (loop_images / t_loop)
    print(f"  points kept per diagram: mean {keep.sum(1).mean():.1f}, max {keep.sum(1).max()}")
    print(f"  union-find H0     : {n / t_h0:8.1f} images/s")
    print(f"  persistence images: {n / t_pi:8.1f} images/s")
    print(f"  image_pis (whole) : {n / t_all:8.1f} images/s (one process)")
    print(f"  per-image loop    : {loop_images / t_loop:8.1f} images/s -> ours is {ratio:.1f}x "
          f"(max |difference| {np.abs(ours[:loop_images] - ref).max():.1e})")
    return n / t_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--loop_images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="timings keep the fastest of this many runs")
    parser.add_argument("--data_root", default="./data")
    args = parser.parse_args()
    images = cifar_images(args.data_root, args.images)
    label = "CIFAR-10 train"
    if images is None:
        images, label = synthetic_images(args.images), "synthetic 8-bit 32x32 RGB"
    print(f"{len(images)} images ({label}); 6 signals of 1024 values each")
    image_pis(images[:2])  # warm-up
    rate = bench(images, args.loop_images, args.repeats)
    for workers in sorted({1, os.cpu_count() or 1}):
        print(f"projected CIFAR-10 60k with {workers} worker(s): {60000 / rate / workers / 60:.1f} min (assumes "
              f"linear scaling over idle cores)")


if __name__ == "__main__":
    main()
