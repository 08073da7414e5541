"""Every H0 persistence image of a Rips filtration is rank one: all H0 births are 0, so the image is the birth
axis' profile of one Gaussian at 0 times a weighted, smoothed histogram of the deaths (the MST edge lengths).
A 20 x 20 H0 image holds 20 free numbers. Checked against gudhi's own images and the official TopKD images,
never through our code; H1 images are not rank one."""
import gudhi
import numpy as np
import pytest
from gudhi.representations import PersistenceImage


def singular_ratio(image: np.ndarray, side: int = 20) -> float:
    s = np.linalg.svd(np.asarray(image, dtype=np.float64).reshape(side, side), compute_uv=False)
    return float(s[1] / s[0])


def h0_diagram(cloud: np.ndarray) -> np.ndarray:
    """gudhi's finite H0 (birth, death) pairs of a cloud's Rips filtration."""
    tree = gudhi.RipsComplex(points=cloud).create_simplex_tree(max_dimension=1)
    tree.compute_persistence()
    bars = tree.persistence_intervals_in_dimension(0)
    return bars[np.isfinite(bars[:, 1])]


@pytest.mark.parametrize("birth_range", [(0.0, 0.0), (-0.5, 0.5)])
def test_gudhi_h0_images_are_rank_one(birth_range):
    rng = np.random.default_rng(0)
    diagrams = [h0_diagram(rng.normal(size=(64, 16)) * rng.uniform(0.5, 2)) for _ in range(8)]
    assert all(np.all(d[:, 0] == 0) for d in diagrams)  # the reason: every H0 bar is born at 0
    top = max(float((d[:, 1] - d[:, 0]).max()) for d in diagrams)
    # TopKD's weight 10 tanh(p) + 10 log(100 b + 1), gudhi's (birth, persistence) coordinates
    image = PersistenceImage(bandwidth=0.2, resolution=[20, 20], im_range=[*birth_range, 0.0, top],
                             weight=lambda pt: 10 * np.tanh(pt[1]) + 10 * np.log(100 * pt[0] + 1))
    for pi in image.fit_transform(diagrams):
        assert singular_ratio(pi) < 1e-12


def test_official_h0_images_are_rank_one_and_h1_images_are_not(reference_dir):
    ref = np.load(reference_dir / "official_pi_reference.npz")
    assert max(singular_ratio(pi) for pi in ref["pi_dim0"]) < 1e-6  # float32 files
    # the official H0 images, fitted on diagrams whose births are all 0: 20 identical columns
    h0 = ref["pi_dim0"].reshape(-1, 20, 20)
    np.testing.assert_array_equal(h0, np.repeat(h0[:, :, :1], 20, axis=2))
    assert np.median([singular_ratio(pi) for pi in ref["pi_dim1"] if pi.any()]) > 0.01
