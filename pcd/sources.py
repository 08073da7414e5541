"""Where point clouds come from: a teacher's embeddings of augmented training batches, or a ``.npy`` file.

A source has ``num_clouds``, ``points`` (N), ``dim`` (D), ``config()`` (stored in the manifest) and
``clouds(start, stop)`` yielding consecutive ``[k, N, D]`` arrays; any range is a pure function of the
configuration, so it can be regenerated on its own (what makes resume exact).
"""
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datasets.device_data import DeviceView
from datasets.keyed import RULE as KEYED_RULE
from datasets.keyed import KeyedItems
from models.common import check_layer, layer_embedding

from topkd_io import TopKDError, file_identity, load_npy


class ArrayCloudSource:
    """Clouds read from a ``.npy`` float array ``[num_clouds, N, D]`` (memory-mapped, used as they are)."""

    kind = "pcd"

    def __init__(self, path: str):
        array = load_npy(path, "--pcd file", rebuild="np.save(path, clouds) of a float array [num_clouds, N, D]")
        if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
            raise TopKDError(f"--pcd file {path} must hold a float array [num_clouds, N, D], got {array.dtype} "
                             f"{tuple(array.shape)}")
        self.path, self.dtype = path, array.dtype  # no long-lived mapping is kept
        self.num_clouds, self.points, self.dim = (int(s) for s in array.shape)

    def config(self) -> Dict[str, Any]:
        return {"kind": self.kind, "file": file_identity(self.path, hash_file=False), "dtype": str(self.dtype)}

    def clouds(self, start: int, stop: int, chunk: int = 1024) -> Iterator[np.ndarray]:
        """Copies of ``chunk`` clouds at a time, at least float32 (float16 widened exactly), the file mapped per
        chunk so that pages already read do not pile up in the process's resident memory."""
        for s in range(start, stop, chunk):
            mapped = np.load(self.path, mmap_mode="r")
            yield np.array(mapped[s:min(stop, s + chunk)], dtype=np.promote_types(mapped.dtype, np.float32))
            del mapped


# --------------------------------------------------------------------------------------------------
# teacher embeddings
# --------------------------------------------------------------------------------------------------
class PassSchedule:
    """Which samples form cloud ``g``: batch ``g % per_pass`` of pass ``g // per_pass``, each pass a seeded
    permutation cut into ``n // batch`` full batches. ``batch(g)`` gives the item keys ``(pass, index)``, read
    through ``KeyedItems(train_set, seed)``: the augmentation is keyed, whatever the workers or the route."""

    def __init__(self, num_samples: int, batch: int, passes: int, seed: int):
        self.n, self.batch_size, self.passes, self.seed = num_samples, batch, passes, seed
        self.per_pass = num_samples // batch
        self._cache: Dict[int, np.ndarray] = {}

    @property
    def num_clouds(self) -> int:
        return self.per_pass * self.passes

    def _pass(self, p: int) -> np.ndarray:
        if p not in self._cache:
            self._cache = {p: np.random.default_rng([self.seed, p]).permutation(self.n)}
        return self._cache[p]

    def batch(self, g: int) -> List[Tuple[int, int]]:
        """Keys ``(pass, index)`` of the ``batch`` samples of cloud ``g``."""
        p, b = divmod(g, self.per_pass)
        return [(p, int(i)) for i in self._pass(p)[b * self.batch_size:(b + 1) * self.batch_size]]


TEACHER_BN_MODES = ("batch", "eval")  # how the teacher's BatchNorm layers normalise (--teacher_bn)


def set_teacher_bn(teacher: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``teacher`` in eval mode (``--teacher_bn eval``: the stored statistics, as the student stage sees it); with
    ``mode="batch"`` its BatchNorm layers normalise with each batch's own statistics (the official stage 2, which
    never calls ``eval()``), their stored statistics neither used nor written."""
    if mode not in TEACHER_BN_MODES:
        raise TopKDError(f"--teacher_bn must be one of {', '.join(TEACHER_BN_MODES)}, got {mode!r}")
    teacher.eval()
    if mode == "batch":
        for module in teacher.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.train()
                module.track_running_stats = False
    return teacher


# --data_on_device with --teacher_bn eval: clouds whose images go through the teacher in one forward
DEVICE_CLOUDS_PER_FORWARD = 16


class TeacherCloudSource:
    """Clouds = a frozen teacher's layer-``layer`` embeddings (``models.common.layer_embedding``, as stage 4
    uses them; not normalized) of shuffled, augmented training batches: cloud ``g`` is ``[batch, C]`` float32.
    ``teacher_bn``: see `set_teacher_bn`; ``train_set``: items ``(image, target, index, ...)``, augmented."""

    kind = "teacher"

    def __init__(self, teacher: torch.nn.Module, train_set: Dataset, *, batch: int, passes: int, layer: int,
                 seed: int, device: str = "cpu", workers: int = 0, identity: Optional[Dict[str, Any]] = None,
                 teacher_bn: str = "batch", data_on_device: bool = False):
        if batch < 2:
            raise TopKDError(f"--batch_size {batch} gives clouds of fewer than 2 points; use at least 2 (paper: 64)")
        if passes < 1:
            raise TopKDError(f"--passes must be at least 1, got {passes}")
        if len(train_set) < batch:
            raise TopKDError(f"the training set has {len(train_set)} images, fewer than --batch_size {batch}")
        self.teacher_bn, self.teacher = teacher_bn, set_teacher_bn(teacher, teacher_bn).to(device)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.device, self.workers = device, int(workers)
        self.images = KeyedItems(train_set, seed)  # item (pass, index) -> (image, target, index, ...)
        # --data_on_device: the set on the device, batches cut and augmented there with the same keyed draws
        self.view = DeviceView(self.images, torch.device(device)) if data_on_device else None
        self.schedule = PassSchedule(len(train_set), batch, passes, seed)
        self.num_clouds, self.points = self.schedule.num_clouds, batch
        self.identity = dict(identity or {})
        self.layer_arg = int(layer)
        probe = self._forward(self.images[self.schedule.batch(0)[0]][0].unsqueeze(0).expand(2, -1, -1, -1))
        self.layer = check_layer(self.layer_arg, len(probe), "--layer", "teacher")
        self.dim = int(layer_embedding(probe, self.layer).shape[1])

    def _forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        with torch.inference_mode():
            feats, _ = self.teacher(x.to(self.device, non_blocking=True), is_feat=True)
        return list(feats)

    def config(self) -> Dict[str, Any]:
        return {"kind": self.kind, **self.identity, "layer": self.layer_arg, "teacher_bn": self.teacher_bn,
                "num_samples": self.schedule.n, "item_draws": KEYED_RULE,
                "clouds_per_pass": self.schedule.per_pass}

    def clouds(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Embeddings of batches ``start..stop-1``, one ``[1, batch, C]`` float32 array per batch."""
        if self.view is not None:
            # Several clouds per teacher forward only with --teacher_bn eval (per-image results); with batch
            # statistics each cloud's 64 images must be normalised on their own, one forward per cloud.
            n, per_forward = self.points, DEVICE_CLOUDS_PER_FORWARD if self.teacher_bn == "eval" else 1
            for g0 in range(start, stop, per_forward):
                groups = range(g0, min(stop, g0 + per_forward))
                keys = [key for g in groups for key in self.schedule.batch(g)]
                feats = layer_embedding(self._forward(self.view.batch(keys)[0]), self.layer)
                feats = feats.float().cpu().numpy()
                for k in range(len(groups)):
                    yield feats[k * n:(k + 1) * n][None]
            return
        batches = (self.schedule.batch(g) for g in range(start, stop))  # the keys of clouds start..stop-1
        loader = DataLoader(self.images, batch_sampler=batches, num_workers=self.workers,
                            pin_memory=self.device.startswith("cuda"))
        for x, *_ in loader:
            yield layer_embedding(self._forward(x), self.layer).float().cpu().numpy()[None]
