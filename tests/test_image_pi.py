"""TGD image persistence images: lower-star H0 vs gudhi; the default (official, persim) layout vs the
official reference PIs and a transcription of persim 0.3's PersImage; the old layout vs gudhi's
PersistenceImage; the disk cache and its layout checks."""
import gudhi
import numpy as np
import pytest
import torch
import yaml
from gudhi.representations import PersistenceImage
from torch.utils.data import Dataset

from datasets.pi_images import (PIImages, WithImagePI, build_pi_cache, cache_folder, load_pi_cache,
                                pi_bundle)
from topology.image_pi import (ImagePIParams, diagram_images, diagrams_of_image, filter_diagram_points,
                               image_pi, image_pis, lower_star_h0, lower_star_h0_batched, to_uint8)

P = ImagePIParams()
P_OLD = ImagePIParams(layout="gudhi", quantize="none")  # the earlier layout, equal to gudhi's images
P_FLOAT = ImagePIParams(quantize="none")  # the official layout, before the 8-bit cast


def gudhi_lower_star_h0(signal):
    """H0 of the lower-star filtration of a path graph, by gudhi's SimplexTree (finite and infinite)."""
    st = gudhi.SimplexTree()
    for i, v in enumerate(signal):
        st.insert([i], float(v))
    for i in range(len(signal) - 1):
        st.insert([i, i + 1], float(max(signal[i], signal[i + 1])))
    st.compute_persistence(persistence_dim_max=True)  # zero-length bars are dropped by default
    return st.persistence_intervals_in_dimension(0)


def as_sorted(diagram):
    return sorted(map(tuple, np.asarray(diagram).reshape(-1, 2).tolist()))


def gudhi_tgd_image(diagram, params=P_OLD):
    """The TGD PI of one filtered diagram by gudhi: linear weight p / max p, then max-normalized."""
    d = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    r = params.resolution
    if len(d) == 0:
        return np.zeros((r, r))
    top = (d[:, 1] - d[:, 0]).max()
    pim = PersistenceImage(bandwidth=params.bandwidth, weight=lambda x: x[1] / top,
                           resolution=[r, r], im_range=list(params.im_range))
    img = pim.fit_transform([d])[0].reshape(r, r)
    return img / img.max() if params.normalize else img


# ---------------------------------------------------------------------------------------------- H0

def test_lower_star_h0_matches_gudhi_on_random_signals_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(150):
        n = int(rng.integers(1, 40))
        x = rng.integers(0, 5, n) / 4.0 if trial % 2 else rng.random(n)  # odd trials: many ties
        ours = lower_star_h0(x, keep_infinite=True)
        assert as_sorted(ours) == as_sorted(gudhi_lower_star_h0(x)), x


def test_batched_h0_equals_one_signal_at_a_time():
    rng = np.random.default_rng(1)
    x = np.round(rng.random((7, 64)) * 10) / 10
    births, deaths = lower_star_h0_batched(x)
    for row in range(len(x)):
        keep = ~np.isnan(births[row]) & (deaths[row] > births[row])
        got = np.stack([births[row][keep], deaths[row][keep]], 1)
        assert as_sorted(got) == as_sorted(gudhi_lower_star_h0(x[row])[:-1])


def test_hand_made_signal_has_the_known_diagram():
    # minima 0.05 (0), 0.0 (2), 0.1 (4), 0.12 (6), 0.1202 (8); maxima 0.2, 0.11, 0.25, 0.1205
    x = np.array([0.05, 0.2, 0.0, 0.11, 0.1, 0.25, 0.12, 0.1205, 0.1202])
    expected = [(0.0, np.inf), (0.05, 0.2), (0.1, 0.11), (0.12, 0.25), (0.1202, 0.1205)]
    assert as_sorted(lower_star_h0(x, keep_infinite=True)) == sorted(expected)
    births, deaths = lower_star_h0_batched(x[None])
    keep = filter_diagram_points(births, deaths, P)  # drops the infinite, p=0.0003 and p=0.01 points
    assert as_sorted(np.stack([births[keep], deaths[keep]], 1)) == [(0.05, 0.2), (0.12, 0.25)]


# ---------------------------------------------------------------------------------------------- PI

def test_pi_of_hand_made_signal_equals_gudhi_and_the_formula():
    x = np.array([0.05, 0.2, 0.0, 0.11, 0.1, 0.25, 0.12, 0.1205, 0.1202])
    image = x.reshape(1, 3, 3)
    pis = image_pi(image, P_OLD)
    assert pis.shape == (2, 50, 50) and pis.dtype == np.float32
    known = np.array([[0.05, 0.2], [0.12, 0.25]])
    np.testing.assert_allclose(pis[0], gudhi_tgd_image(known), rtol=1e-6, atol=1e-7)
    # the same by hand: sum_k (p_k / 0.15) N(p_i; p_k, s) N(b_j; b_k, s), divided by the maximum
    grid = np.linspace(0.0, 0.3, 50)
    s = 0.01
    img = sum((p / 0.15) * np.exp(-((grid[:, None] - p) ** 2 + (grid[None, :] - b) ** 2) / (2 * s * s))
              for b, p in [(0.05, 0.15), (0.12, 0.13)])
    np.testing.assert_allclose(pis[0], img / img.max(), rtol=1e-6, atol=1e-7)
    # the brightest pixel sits at the (birth 0.05, persistence 0.15) point: row = persistence
    i, j = np.unravel_index(np.argmax(pis[0]), pis[0].shape)
    assert abs(grid[i] - 0.15) < 0.007 and abs(grid[j] - 0.05) < 0.007
    # channel 1: the column-wise signal (transpose), checked against gudhi's diagram of it
    col = gudhi_lower_star_h0(image[0].T.reshape(-1))
    col = col[np.isfinite(col[:, 1]) & (col[:, 1] - col[:, 0] > 0.02)]
    np.testing.assert_allclose(pis[1], gudhi_tgd_image(col), rtol=1e-6, atol=1e-7)


def test_unnormalized_images_equal_gudhi_persistence_image():
    rng = np.random.default_rng(2)
    params = ImagePIParams(normalize=False, layout="gudhi", quantize="none")
    births = np.full((3, 6), np.nan)
    deaths = np.zeros((3, 6))
    births[0, :4], deaths[0, :4] = [0.0, 0.1, 0.2, 0.05], [0.1, 0.15, 0.5, 0.3]
    births[1, :2], deaths[1, :2] = rng.random(2) * 0.2, 0.2 + rng.random(2) * 0.1
    keep = filter_diagram_points(births, deaths, params)
    ours = diagram_images(births, deaths, keep, params)
    for row in range(3):
        d = np.stack([births[row][keep[row]], deaths[row][keep[row]]], 1)
        np.testing.assert_allclose(ours[row], gudhi_tgd_image(d, params), rtol=1e-10, atol=1e-12)
    assert not ours[2].any()  # empty diagram -> zero image


def test_rgb_images_match_the_gudhi_pipeline_and_channel_order():
    rng = np.random.default_rng(3)
    images = np.round(rng.random((2, 3, 6, 5)) * 255) / 255  # 8-bit levels, non-square
    pis = image_pis(images, P_OLD)
    assert pis.shape == (2, 6, 50, 50)
    for n in range(2):
        signals = [images[n, c].reshape(-1) for c in range(3)] + [images[n, c].T.reshape(-1) for c in range(3)]
        for ch, sig in enumerate(signals):
            d = gudhi_lower_star_h0(sig)
            d = d[np.isfinite(d[:, 1]) & (d[:, 1] - d[:, 0] > 0.02) & (d[:, 1] - d[:, 0] > 1e-3)]
            np.testing.assert_allclose(pis[n, ch], gudhi_tgd_image(d), rtol=1e-5, atol=1e-6)
            assert pis[n, ch].max() == pytest.approx(1.0) or not d.size
    assert len(diagrams_of_image(images[0])) == 6


def test_flat_image_gives_zero_pi_and_bad_values_are_rejected():
    assert not image_pis(np.full((1, 3, 4, 4), 0.5)).any()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        image_pis(np.full((1, 3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="shape"):
        image_pis(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="unknown image-PI parameter"):
        ImagePIParams.from_dict({"sigma": 1})
    assert ImagePIParams.from_dict(P.to_dict()) == P


# ---------------------------------------------------------------------------------------------- cache

class TinyImages(Dataset):
    """`(image [3, 6, 6] in [0, 1], target, index)`; records which items were read."""

    def __init__(self, n=10, seed=0):
        rng = np.random.default_rng(seed)
        self.images = torch.from_numpy(np.round(rng.random((n, 3, 6, 6)) * 255).astype(np.float32) / 255)
        self.targets = [int(t) for t in rng.integers(0, 3, n)]
        self.read = set()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        self.read.add(i)
        return self.images[i], self.targets[i], i


def test_cache_round_trip_and_datasets(tmp_path):
    data = TinyImages()
    folder = build_pi_cache(data, cache_folder(tmp_path, "tiny", "train"), "tiny", "train",
                            chunk_size=4, dtype="float32")
    cache = load_pi_cache(folder, count=10, dataset="tiny", split="train")
    direct = image_pis(data.images.numpy())
    np.testing.assert_array_equal(np.asarray(cache.pis), direct)
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert manifest["complete"] and manifest["count"] == 10 and manifest["params"] == P.to_dict()
    wrapped = WithImagePI(data, cache)
    image, target, index, pi = wrapped[7]
    assert index == 7 and target == data.targets[7] and torch.equal(pi, torch.from_numpy(direct[7]))
    pi, target, index = PIImages(cache)[3]
    assert pi.shape == (6, 50, 50) and target == data.targets[3] and index == 3
    # the default uint8 cache (parallel workers) holds the 8-bit levels and serves exactly level / 255
    small = load_pi_cache(build_pi_cache(data, tmp_path / "u8", "tiny", "train", chunk_size=3, workers=2))
    assert small.pis.dtype == np.uint8 and small.manifest["layout"] == "persim"
    np.testing.assert_array_equal(np.asarray(small.pis), np.floor(direct.astype(np.float64) * 255 + 1e-3))
    np.testing.assert_array_equal(np.stack([small.pi(i).numpy() for i in range(10)]), direct)
    # float16 gives the same values to half precision
    half = build_pi_cache(data, tmp_path / "half", "tiny", "train", chunk_size=3, dtype="float16")
    np.testing.assert_allclose(np.asarray(load_pi_cache(half).pis, dtype=np.float32), direct, atol=1e-3)
    # the PI-teacher bundle over train/test caches
    build_pi_cache(TinyImages(4, seed=1), cache_folder(tmp_path, "tiny", "test"), "tiny", "test", chunk_size=4)
    bundle = pi_bundle(tmp_path, "tiny", num_classes=3, val_fraction=0.2)
    assert bundle.in_channels == 6 and bundle.image_size == 50 and len(bundle.val) == 2 and len(bundle.test) == 4


class StopAt(TinyImages):
    """TinyImages whose item ``stop`` raises (a run interrupted while reading that chunk)."""

    def __init__(self, stop, **kw):
        super().__init__(**kw)
        self.stop = stop

    def __getitem__(self, i):
        if i == self.stop:
            raise KeyboardInterrupt
        return super().__getitem__(i)


def test_cache_resumes_only_missing_chunks(tmp_path):
    data = TinyImages()
    folder = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):  # stopped while reading chunk 2 (items 8, 9)
        build_pi_cache(StopAt(8), folder, "tiny", "train", chunk_size=4, dtype="float32")
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert sorted(manifest["chunks"]) == [0, 1] and not manifest["complete"] and not (folder / "pi.npy").exists()
    with pytest.raises(ValueError, match="incomplete"):
        load_pi_cache(folder)
    again = TinyImages()
    build_pi_cache(again, folder, "tiny", "train", chunk_size=4, dtype="float32")
    assert again.read == {0, 8, 9}  # item 0 for the shape, then only the missing chunk
    np.testing.assert_array_equal(np.asarray(load_pi_cache(folder).pis), image_pis(data.images.numpy()))
    assert not (folder / "parts").exists()  # merged into pi.npy / targets.npy


def test_cache_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate_image_PI.py"):
        load_pi_cache(tmp_path / "cifar10_train")
    data = TinyImages()
    folder = build_pi_cache(data, tmp_path / "c", "tiny", "train", chunk_size=5)
    with pytest.raises(ValueError, match="other parameters.*bandwidth"):
        load_pi_cache(folder, params=ImagePIParams(bandwidth=0.02))
    with pytest.raises(ValueError, match="count"):
        load_pi_cache(folder, count=11)
    with pytest.raises(ValueError, match="other settings"):
        build_pi_cache(data, folder, "tiny", "train", chunk_size=5, params=ImagePIParams(resolution=20))
    cache = load_pi_cache(folder)
    with pytest.raises(ValueError, match="only 10"):
        WithImagePI(TinyImages(12), cache)
    other = TinyImages(seed=5)
    bad = next(i for i in range(10) if other.targets[i] != data.targets[i])
    with pytest.raises(ValueError, match="other data"):
        WithImagePI(other, cache)[bad]


def test_agrees_with_the_shared_persistence_image_module():
    from topology import point_cloud_pi as images_mod

    rng = np.random.default_rng(4)
    image = np.round(rng.random((3, 8, 8)) * 255) / 255
    ours = image_pi(image, P_OLD)
    shared = images_mod.PIParams(bandwidth=0.01, im_range=(0.0, 0.3, 0.0, 0.3), resolution=(50, 50),
                                 weight="linear")
    for ch, d in enumerate(diagrams_of_image(image)):
        img = images_mod.persistence_images([d], shared, normalize=False)[0].reshape(50, 50)
        np.testing.assert_allclose(ours[ch], img / img.max() if d.size else img, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------- official layout

def test_default_pis_equal_the_official_reference(reference_dir):
    ref = np.load(reference_dir / "official_image_pi_reference.npz")
    images = ref["images_hwc_uint8"].transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    floats = image_pis(images, P_FLOAT)
    err = np.abs(floats - ref["pi_float"]).max()
    loader = to_uint8(image_pis(images))  # the default: official layout, 8-bit levels
    agree = (loader == ref["pi_loader_uint8"]).mean()
    print(f"official image PIs: max |float - pi_float| = {err:.2e}; uint8 agreement {agree:.6%}")
    assert floats.shape == ref["pi_float"].shape and err < 1e-5
    assert agree >= 0.999
    # the notebook's own cast of our float PIs agrees as well (a few pixels may sit on a rounding edge)
    assert (to_uint8(floats) == ref["pi_loader_uint8"]).mean() >= 0.999
    # the old layout is far from it: it is an option, not the default
    assert np.abs(image_pis(images, P_OLD) - ref["pi_float"]).max() > 0.5


def persim_style_image(diagram, pixels=50, spread=0.01, max_bd=0.3):
    """persim 0.3 `PersImage(pixels, spread, specs={minBD: 0, maxBD})` of one (birth, death) diagram,
    transcribed point by point: (birth, persistence) coordinates, weight persistence / max persistence,
    normal-CDF differences over each pixel's edges (lower edges linspace(0, maxBD, n), width maxBD / n),
    then `img.T[::-1]`."""
    from scipy.stats import norm

    d = np.asarray(diagram, dtype=np.float64).reshape(-1, 2)
    lower = np.linspace(0.0, max_bd, pixels)
    upper = lower + max_bd / pixels
    img = np.zeros((pixels, pixels))
    if len(d) == 0:
        return img
    pers = d[:, 1] - d[:, 0]
    for birth, p in zip(d[:, 0], pers):
        x = norm.cdf(upper, birth, spread) - norm.cdf(lower, birth, spread)
        y = norm.cdf(upper, p, spread) - norm.cdf(lower, p, spread)
        img += np.outer(x, y) * (p / pers.max())
    return img.T[::-1]


def test_persim_layout_equals_a_transcription_of_persim():
    params = ImagePIParams(normalize=False, quantize="none")
    births = np.full((3, 5), np.nan)
    deaths = np.zeros((3, 5))
    births[0, :4], deaths[0, :4] = [0.0, 0.1, 0.2, 0.05], [0.1, 0.15, 0.5, 0.3]  # one point beyond the range
    births[1, :1], deaths[1, :1] = [0.12], [0.25]
    keep = filter_diagram_points(births, deaths, params)
    ours = diagram_images(births, deaths, keep, params)
    for row in range(3):
        d = np.stack([births[row][keep[row]], deaths[row][keep[row]]], 1)
        np.testing.assert_allclose(ours[row], persim_style_image(d), rtol=1e-9, atol=1e-12)
    assert not ours[2].any()
    # orientation: the single point (birth 0.12, persistence 0.13) lies in birth pixel 19 (lower edge
    # 19 * 0.3 / 49 = 0.1163, width 0.006) and persistence pixel 21 ([0.1286, 0.1346]); persim stores
    # birth along columns and persistence pixel 21 in row 49 - 21 = 28 (persistence grows upward)
    r, c = np.unravel_index(np.argmax(ours[1]), ours[1].shape)
    assert (r, c) == (49 - 21, 19)


def test_layout_and_quantize_options():
    assert P.layout == "persim" and P.quantize == "uint8"
    legacy = {k: v for k, v in P_OLD.to_dict().items() if k not in ("layout", "quantize")}
    with pytest.raises(ValueError, match="layout, quantize missing"):
        ImagePIParams.from_dict(legacy)  # parameters written before layouts are refused, never guessed
    assert ImagePIParams.from_dict(P.to_dict()) == P
    with pytest.raises(ValueError, match="layout"):
        ImagePIParams(layout="ripser")
    with pytest.raises(ValueError, match="quantize"):
        ImagePIParams(quantize="uint4")
    rng = np.random.default_rng(6)
    images = np.round(rng.random((2, 3, 8, 8)) * 255) / 255
    q = image_pis(images)
    np.testing.assert_array_equal(q * 255, np.round(q * 255))  # 8-bit levels ...
    f = image_pis(images, P_FLOAT)
    np.testing.assert_array_equal(to_uint8(q), to_uint8(f))  # ... the notebook's cast of the float image


def test_cache_refuses_to_mix_layouts(tmp_path):
    data = TinyImages()
    old = build_pi_cache(data, cache_folder(tmp_path, "tiny", "train"), "tiny", "train", chunk_size=5,
                         params=P_OLD, dtype="float32")
    assert yaml.safe_load((old / "manifest.yaml").read_text())["layout"] == "gudhi"
    with pytest.raises(ValueError, match="layout 'gudhi' but layout 'persim'"):
        load_pi_cache(old)
    assert load_pi_cache(old, params=P_OLD).params == P_OLD
    with pytest.raises(ValueError, match="layouts never mix"):
        build_pi_cache(data, old, "tiny", "train", chunk_size=5)  # resuming with the other layout
    with pytest.raises(ValueError, match="uint8"):
        build_pi_cache(data, tmp_path / "x", "tiny", "train", params=P_OLD, dtype="uint8")
    build_pi_cache(TinyImages(4, seed=1), cache_folder(tmp_path, "tiny", "test"), "tiny", "test", chunk_size=4)
    with pytest.raises(ValueError, match="mix layouts"):
        pi_bundle(tmp_path, "tiny", num_classes=3, params=None)
    # a manifest without layout fields is refused (re-sealed: an edit alone is refused by its checksum)
    from topkd_io import seal

    manifest = yaml.safe_load((old / "manifest.yaml").read_text())
    del manifest["layout"], manifest["params"]["layout"], manifest["params"]["quantize"]
    (old / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ValueError, match="does not match its own checksum"):
        load_pi_cache(old)
    (old / "manifest.yaml").write_text(yaml.safe_dump(seal(manifest)))
    with pytest.raises(ValueError, match="missing"):
        load_pi_cache(old, params=None)
