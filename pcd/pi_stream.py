"""The TopKD persistence-image parameters fitted on diagrams that arrive shard by shard.

``topology.point_cloud_pi.PIParams.fit`` wants every diagram at once. Its rule splits into parts that stream:
the bandwidth reads only the first ``num_points`` stacked points (so ``PIParams.fit`` on the first
diagrams gives it exactly), the image range is a running min/max of births and persistences, and the
normalizer is a running max of the unnormalized images. The result equals ``PIParams.fit`` on the
whole set.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from topkd_io import TopKDError
from topology.point_cloud_pi import PIParams, persistence_images

NUM_POINTS = 200


class StreamingPIFit:
    """Feed diagram batches in order: ``observe`` all, ``params()``, ``observe_images`` all, ``normalized``."""

    def __init__(self, resolution=(20, 20), weight: str = "topkd", quantile: float = 0.2,
                 num_points: int = NUM_POINTS, homology_dim: Optional[int] = None):
        self.resolution, self.weight, self.quantile = tuple(resolution), weight, quantile
        self.num_points, self.homology_dim = num_points, homology_dim
        self.head: List[np.ndarray] = []  # first diagrams, until num_points finite points are held
        self.head_points = 0
        self.lo = np.array([np.inf, np.inf])
        self.hi = np.array([-np.inf, -np.inf])
        self.points = 0
        self.peak = 0.0

    def observe(self, diagrams: Sequence[np.ndarray]) -> None:
        """Take the next diagrams (list of ``[k, 2]`` birth/death) into the bandwidth and range statistics."""
        for dg in diagrams:
            dg = np.asarray(dg, dtype=np.float64).reshape(-1, 2)
            dg = dg[np.isfinite(dg).all(axis=1)]
            if self.head_points < self.num_points:
                self.head.append(dg)
                self.head_points += len(dg)
            if len(dg):
                bp = np.stack([dg[:, 0], dg[:, 1] - dg[:, 0]], axis=1)
                self.lo = np.minimum(self.lo, bp.min(axis=0))
                self.hi = np.maximum(self.hi, bp.max(axis=0))
                self.points += len(dg)

    def params(self) -> PIParams:
        """Bandwidth and range (normalizer still 1) once every diagram has been observed."""
        if self.points == 0:
            raise TopKDError("cannot fit persistence-image parameters: no diagram holds a finite point "
                             "(are the clouds all single repeated points?)")
        head = PIParams.fit(self.head, resolution=self.resolution, weight=self.weight, quantile=self.quantile,
                            num_points=self.num_points, homology_dim=self.homology_dim)
        im_range = (self.lo[0], self.hi[0], self.lo[1], self.hi[1])
        return PIParams(head.bandwidth, im_range, self.resolution, self.weight, 1.0, self.homology_dim)

    def observe_images(self, diagrams: Sequence[np.ndarray], params: PIParams) -> None:
        """Track the max of the unnormalized images of the next diagrams."""
        if len(diagrams):
            self.peak = max(self.peak, float(persistence_images(diagrams, params, normalize=False).max()))

    def normalized(self, params: PIParams) -> PIParams:
        if not self.peak > 0:
            raise TopKDError("all persistence images are zero: cannot normalize them; check the clouds")
        return PIParams(params.bandwidth, params.im_range, params.resolution, params.weight, self.peak,
                        params.homology_dim)

    @staticmethod
    def images(diagrams: Sequence[np.ndarray], params: PIParams) -> np.ndarray:
        """Normalized images ``[n, R*R]`` float32 of ``diagrams``."""
        return persistence_images(diagrams, params, normalize=True).astype(np.float32)
