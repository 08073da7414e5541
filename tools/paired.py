"""Paired differences between two methods over the seeds they share: mean, confidence interval and p-value.

Two runs of the same seed share the data split, the initial weights and the order of the batches, so the
difference of their scores is far less noisy than the difference of two independent means. For differences
``d_i = x_i - y_i`` (i over the shared seeds, n of them):

- the mean ``d̄`` and its ``level`` confidence interval ``d̄ ± t_{(1+level)/2, n-1} · s / √n`` (Student's t over
  the differences, s their sample standard deviation);
- the two-sided p-value of the paired t-test of ``d̄ = 0`` (what ``scipy.stats.ttest_rel`` gives);
- with at least `MIN_BOOTSTRAP` seeds, a percentile bootstrap interval of the mean difference as well
  (resampled with a fixed key, so the table is the same every time it is collected).

Equal differences (s = 0) give a zero-width interval; p is 1 when they are all 0, else 0 (the t statistic is
infinite), as scipy says.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence

import numpy as np
from scipy import stats

MIN_BOOTSTRAP = 5  # fewer seeds have too few distinct resamples for a percentile interval to mean much
RESAMPLES = 10_000
BOOTSTRAP_KEY = 0


@dataclass(frozen=True)
class Paired:
    """``x - y`` over ``n`` shared seeds: ``mean`` with its t interval [``low``, ``high``] at ``level``, the paired
    t-test's ``p``, and the bootstrap interval [``boot_low``, ``boot_high``] (None with fewer than
    `MIN_BOOTSTRAP` seeds). With one seed only ``mean`` is known."""

    n: int
    mean: float
    low: Optional[float]
    high: Optional[float]
    p: Optional[float]
    level: float = 0.95
    boot_low: Optional[float] = None
    boot_high: Optional[float] = None

    @property
    def contains_zero(self) -> bool:
        """The interval includes 0 (or is unknown): no difference is shown at this level."""
        return self.low is None or self.low <= 0.0 <= self.high

    def text(self, digits: int = 2) -> str:
        """``+0.41 [-0.52, +1.34], p 0.27`` (``(CI holds 0)`` appended when it does); one seed: the difference alone."""
        out = f"{self.mean:+.{digits}f}"
        if self.low is None:
            return out + f" (n {self.n}, no interval)"
        out += f" [{self.low:+.{digits}f}, {self.high:+.{digits}f}], p {self.p:.2g}"
        return out + (" (CI holds 0)" if self.contains_zero else "")

    def to_dict(self) -> Dict[str, Optional[float]]:
        return asdict(self)


def paired_difference(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> Paired:
    """``x[i] - y[i]`` for seed-matched scores (same length, same seed order) -> `Paired`."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    n = len(d)
    if n == 0 or len(x) != len(y):
        raise ValueError(f"paired_difference needs two equally long, non-empty lists, got {len(x)} and {len(y)}")
    mean = float(d.mean())
    if n == 1:
        return Paired(1, mean, None, None, None, level)
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        low = high = mean
        p = 1.0 if mean == 0.0 else 0.0
    else:
        half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    boot_low = boot_high = None
    if n >= MIN_BOOTSTRAP:
        rng = np.random.default_rng(BOOTSTRAP_KEY)
        means = d[rng.integers(0, n, size=(RESAMPLES, n))].mean(axis=1)
        boot_low, boot_high = (float(v) for v in np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))
    return Paired(n, mean, low, high, p, level, boot_low, boot_high)
