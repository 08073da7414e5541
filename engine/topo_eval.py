"""How close a student's latent topology is to its teacher's, measured on fixed test batches.

`TopologyProbe`: `topology.metrics.topology_metrics` of the student's raw embeddings (no TopKD projector, so
every method is measured alike) against the teacher's, averaged over fixed test batches (one batch = one point
cloud, the same items for every method and seed). `measure_checkpoints`: the same for any saved teacher/student
pair (``tools/topo_metrics.py``, ``evaluate.py --path_t``)."""
import logging
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from datasets import build_datasets
from datasets.registry import builder_default
from models import load_model
from models.common import check_layer, layer_embedding
from models.loading import infer_num_classes
from topkd_io import TopKDError
from topology import metrics
from topology.point_cloud_pi import PIParams

from .config import recorded_data_options

log = logging.getLogger(__name__)

PROBE_SEED = 0  # key of the permutation that picks the probe's test items: never --seed
DEFAULT_BATCHES = 4
DEFAULT_BATCH_SIZE = 64  # the official cloud size (TopKD's batch)


def probe_indices(n_items: int, batches: int, batch_size: int) -> List[List[int]]:
    """The fixed test items: ``batches`` lists of ``batch_size`` positions of a permutation drawn with the constant
    key ``PROBE_SEED``; as many as fit a smaller set (at least one, of every item when fewer than ``batch_size``)."""
    if batches < 1 or batch_size < 2:
        raise TopKDError(f"the topology probe needs >= 1 batch of >= 2 points (--topo_eval_batches, "
                         f"--topo_eval_batch_size), got {batches} x {batch_size}")
    if n_items < 2:
        raise TopKDError(f"the test set holds {n_items} item(s): a point cloud needs at least 2")
    size = min(batch_size, n_items)
    count = min(batches, n_items // size)
    order = np.random.default_rng(PROBE_SEED).permutation(n_items)[: count * size]
    return [order[i * size:(i + 1) * size].tolist() for i in range(count)]


@torch.no_grad()
def embed(model: torch.nn.Module, images: torch.Tensor, layer: int) -> np.ndarray:
    """``layer_embedding`` of ``model`` on ``images`` in eval mode, float64 ``[B, C]``; the mode is restored."""
    was = model.training
    model.eval()
    try:
        feats, _ = model(images.to(next(model.parameters()).device), is_feat=True)
        layer = check_layer(layer, len(feats), "--topo_eval layer")
        return layer_embedding(feats, layer).to("cpu", torch.float64).numpy()
    finally:
        model.train(was)


class TopologyProbe:
    """Topology metrics of a student against a fixed teacher on fixed test batches. layer_t / layer_s: feature
    indices (-1 = the embedding); every: measure every N epochs (None or 0: the last epoch only)."""

    name = "topo"  # the TensorBoard prefix and the summary key

    def __init__(self, teacher: torch.nn.Module, test_set: Dataset, layer_t: int = -1, layer_s: Optional[int] = None,
                 batches: int = DEFAULT_BATCHES, batch_size: int = DEFAULT_BATCH_SIZE, dims: Sequence[int] = (0,),
                 normalize: str = "diam", every: Optional[int] = None):
        if every is not None and every < 0:
            raise TopKDError(f"--topo_eval_every must be >= 0, got {every}")
        self.teacher, self.test_set, self.every = teacher, test_set, int(every) if every else None
        self.layer_t, self.layer_s = int(layer_t), int(layer_t if layer_s is None else layer_s)
        self.dims, self.normalize = tuple(int(d) for d in dims), normalize
        self.requested = (int(batches), int(batch_size))
        self.indices = probe_indices(len(test_set), int(batches), int(batch_size))
        self.pi_params: Dict[int, Any] = {}
        self.pi_params_norm: Dict[int, Any] = {}
        self._images: Optional[List[torch.Tensor]] = None
        self._feat_t: Optional[List[np.ndarray]] = None

    def _prepare(self) -> None:
        """The probe images, the teacher's embeddings and the PI parameters fitted on them, once."""
        if self._feat_t is not None:
            return
        loader = DataLoader(Subset(self.test_set, [i for batch in self.indices for i in batch]),
                            batch_size=len(self.indices[0]), shuffle=False)
        self._images = [(b["image"] if isinstance(b, dict) else b[0]).float() for b in loader]
        self._feat_t = [embed(self.teacher, x, self.layer_t) for x in self._images]
        dgs = [metrics.cloud_diagrams(f, self.dims) for f in self._feat_t]
        scales = [metrics.normalization_scale(f, self.normalize) for f in self._feat_t]
        for d in self.dims:
            for target, diagrams in ((self.pi_params, [g[d] for g in dgs]),
                                     (self.pi_params_norm, [g[d] / c for g, c in zip(dgs, scales)])):
                try:
                    target[d] = PIParams.fit(diagrams, homology_dim=d)
                except ValueError:  # e.g. no H1 point in the teacher's clouds: that image MSE is NaN
                    pass

    def keys(self) -> tuple:
        return metrics.metric_keys(self.dims, self.normalize, pi_dims=self.dims, pi_dims_norm=self.dims)

    @torch.no_grad()
    def measure(self, student: torch.nn.Module) -> Dict[str, float]:
        """Metrics of ``student`` against the teacher, means over the fixed batches (keys: `keys`)."""
        self._prepare()
        per_batch = []
        for images, feat_t in zip(self._images, self._feat_t):
            out = metrics.topology_metrics(feat_t, embed(student, images, self.layer_s), self.dims, self.pi_params,
                                           self.normalize, self.pi_params_norm or None)
            per_batch.append({k: out.get(k, math.nan) for k in self.keys()})
        return metrics.mean_metrics(per_batch)

    def settings(self) -> Dict[str, Any]:
        """What the values mean, as plain data (stored beside them in ``summary.yaml``)."""
        self._prepare()
        return {
            "items": f"first {len(self.indices) * len(self.indices[0])} of a fixed permutation of the test set "
                     f"(key {PROBE_SEED}, independent of --seed)",
            "batches": len(self.indices), "batch_size": len(self.indices[0]), "layer_t": self.layer_t,
            "layer_s": self.layer_s, "dims": list(self.dims), "normalize": self.normalize,
            "pi_params": {d: p.to_dict() for d, p in self.pi_params.items()},
            "pi_params_norm": {d: p.to_dict() for d, p in self.pi_params_norm.items()},
            "pi_params_from": "fitted on the teacher's probe diagrams",
        }


def measure_checkpoints(path_t: str, path_s: str, dataset: Optional[str] = None, data_root: str = "./data",
                        image_size: Optional[int] = None, layer_t: int = -1, layer_s: Optional[int] = None,
                        batches: int = DEFAULT_BATCHES, batch_size: int = DEFAULT_BATCH_SIZE,
                        dims: Sequence[int] = (0,), normalize: str = "diam", device: str = "cpu",
                        model_t: Optional[str] = None, model_s: Optional[str] = None) -> Dict[str, Any]:
    """The probe's metrics of a saved teacher/student pair, on the data the teacher's run recorded."""
    teacher, arch_t, ckpt_t = load_model(path_t, arch=model_t)
    student, arch_s, ckpt_s = load_model(path_s, arch=model_s)
    cfg_t = ckpt_t.get("config") if isinstance(ckpt_t.get("config"), dict) else {}
    dataset = dataset or ckpt_t.get("dataset") or cfg_t.get("dataset")
    if not dataset:
        raise TopKDError(f"cannot tell the data set of {path_t}; pass --dataset")
    data = build_datasets(dataset, data_root, download=False,
                          **recorded_data_options(cfg_t, dataset, image_size=image_size))
    k_t, k_s = (int(c.get("num_classes") or infer_num_classes(m.state_dict()))
                for m, c in ((teacher, ckpt_t), (student, ckpt_s)))
    if k_s != k_t:
        raise TopKDError(f"the student {path_s} has {k_s} classes but the teacher {path_t} has {k_t}: they were "
                         f"trained on different data; pass a student of this teacher")
    if k_t != data.num_classes:
        raise TopKDError(f"{path_t} and {path_s} have {k_t} classes but {data.name} has {data.num_classes}; pass "
                         f"the --dataset they were trained on")
    for name, path, ckpt in (("teacher", path_t, ckpt_t), ("student", path_s, ckpt_s)):
        record = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
        size = record.get("image_size") or builder_default(record.get("dataset"), "image_size")
        if size and int(size) != data.image_size:
            log.warning(f"warning: the {name} {path} was trained on {size}-pixel images and is measured here on "
                        f"{data.image_size}-pixel ones (--image_size {size} measures it as trained)")
    dev = torch.device(device)
    probe = TopologyProbe(teacher.to(dev), data.test, layer_t, layer_s, batches, batch_size, dims, normalize)
    return {"metrics": probe.measure(student.to(dev)), "settings": probe.settings(), "teacher": arch_t,
            "student": arch_s, "dataset": dataset, "image_size": data.image_size}
