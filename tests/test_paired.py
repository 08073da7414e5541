"""The paired difference of two methods over shared seeds, against scipy's paired t-test and a hand computation."""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from tools.paired import MIN_BOOTSTRAP, paired_difference

# best top-1 of two methods over five seeds (seed order), a fixed table
KD_TOPKD = [95.93, 96.48, 94.72, 95.10, 96.85]
KD = [96.02, 95.80, 95.37, 94.66, 96.21]


def test_mean_interval_and_p_equal_scipy_and_hand():
    got = paired_difference(KD_TOPKD, KD)
    d = [a - b for a, b in zip(KD_TOPKD, KD)]  # -0.09, 0.68, -0.65, 0.44, 0.64
    mean = sum(d) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / 4)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t_{0.975, 4}, from a table
    assert got.n == 5 and got.mean == pytest.approx(0.204, abs=1e-12)
    assert (got.low, got.high) == (pytest.approx(mean - half, abs=1e-9), pytest.approx(mean + half, abs=1e-9))
    ref = stats.ttest_rel(KD_TOPKD, KD)
    assert got.p == pytest.approx(ref.pvalue, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (got.low, got.high) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
    assert got.contains_zero and "(CI holds 0)" in got.text()


def test_bootstrap_interval_is_keyed_and_only_with_enough_seeds():
    a = paired_difference(KD_TOPKD, KD)
    assert a.boot_low < a.mean < a.boot_high and a == paired_difference(KD_TOPKD, KD)  # the same every time
    three = paired_difference(KD_TOPKD[:3], KD[:3])
    assert MIN_BOOTSTRAP > 3 and three.boot_low is None and three.low is not None


def test_degenerate_cases():
    assert paired_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p == 1.0
    same = paired_difference([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])  # every difference 1: zero width, p 0 (scipy: inf)
    assert (same.low, same.high, same.p) == (1.0, 1.0, 0.0) and not same.contains_zero
    with warnings.catch_warnings():  # scipy warns about the zero variance it is asked for here
        warnings.simplefilter("ignore", RuntimeWarning)
        assert stats.ttest_rel([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]).pvalue == 0.0
    one = paired_difference([95.0], [94.0])
    assert (one.mean, one.low, one.p) == (1.0, None, None) and "no interval" in one.text()
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_a_clear_difference_excludes_zero():
    rng = np.random.default_rng(0)
    base = rng.normal(90, 2, size=6)
    got = paired_difference(base + 1.0 + rng.normal(0, 0.1, 6), base)
    assert not got.contains_zero and got.low > 0 and got.p < 1e-4
