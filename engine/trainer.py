"""The one training loop, for teachers and students alike: it only knows the Distiller contract.

A batch is the data set's tuple, named by the fields the data declares; in train mode ``distiller(image, target,
**fields)`` returns ``(logits, {term: loss})`` and the sum of the terms is minimised (SGD with momentum,
MultiStepLR stepped once per epoch, epochs counted from 1 as in the official code). Training items are keyed
by (seed, epoch, index) (`datasets.keyed`): results do not depend on ``--num_workers`` and ``--resume`` is
bit-exact. The GPU fast paths (``--compile``, ``--data_on_device``) are taken here and nowhere else. Rank 0
writes ``config.yaml``, ``<arch>_last.pth`` / ``<arch>_best.pth`` (best by validation top-1 when a validation
set exists, never reading a test number, else by test top-1, the papers' convention), ``tb/`` and
``summary.yaml`` (with every epoch's test and validation top-1, ``per_epoch``)."""
import bisect
import logging
import math
import os
import sys
import time
from collections import Counter
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from datasets.bundle import ITEM_FIELDS
from datasets.keyed import KeyedItems, KeyedSampler
from models.loading import state_dict_differences
from topkd_io import DivergedError, TopKDError, load_checkpoint, remove_stale_temps, save_torch, write_yaml

from .distributed import (DistInfo, all_reduce_sum, barrier, broadcast_buffers, current_dist, gather_objects,
                          pick_device)
from .record import Identity, Run, check_epochs, check_resume, format_changes, plain, resume_changes
from .stage import get_rng_state, set_rng_state

log = logging.getLogger(__name__)


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Tuple[int, ...]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at the class count)."""
    kmax = min(max(ks), logits.shape[1])
    hits = logits.topk(kmax, dim=1).indices.eq(target.view(-1, 1))  # [B, kmax]
    return tuple(int(hits[:, :min(k, kmax)].any(dim=1).sum().item()) for k in ks)


class Trainer:
    """Train ``distiller`` on ``train_set``, evaluate on ``test_set`` (and ``val_set``) every epoch; ``resume``: a
    checkpoint (``auto``: ``run_dir``'s last). Probes (``name``, ``every``, ``measure(student) -> {key: float}``,
    optional ``settings()``) run on rank 0 after evaluation. ``fit()`` -> the summary dict."""

    def __init__(self, distiller, train_set: Dataset, test_set: Dataset, cfg, run_dir: str,
                 val_set: Optional[Dataset] = None, probes: Optional[Sequence[Any]] = None,
                 fields: Sequence[str] = ITEM_FIELDS, resume: Optional[str] = None,
                 identity: Optional[Identity] = None):
        self.cfg, self.resume, self.identity, self.run_dir, self.fields = cfg, resume, identity, str(run_dir), fields
        self.probes, self.probe_values, self.history = list(probes or []), {}, []  # history: --resume_override's
        missing = [f for f in distiller.batch_fields if f not in self.fields]
        if missing:
            raise TopKDError(f"{type(distiller).__name__} needs the batch field(s) {', '.join(missing)}, but the "
                             f"training data yields only {', '.join(self.fields)}; give it data that carries them")
        self.dist: DistInfo = current_dist()
        device = pick_device(getattr(cfg, "device", "auto"))
        self.device = torch.device("cuda", self.dist.local_rank) if device.type == "cuda" else device
        self.is_main = self.dist.rank == 0
        # what runs is recorded (config.yaml): --amp and --compile are CUDA only, ignored elsewhere with one line
        self.amp = bool(getattr(cfg, "amp", False)) and device.type == "cuda"
        self.compiled = bool(getattr(cfg, "compile", False)) and device.type == "cuda"
        for flag, on, off in (("--amp", self.amp, "in float32"), ("--compile", self.compiled, "uncompiled")):
            if getattr(cfg, flag[2:], False) and not on:
                log.info(f"{flag} is ignored on {device.type} (CUDA only): training runs {off}")
        # bf16 by default (no loss scaling needed); the KD and topology terms compute in float32
        self.amp_dtype = torch.float16 if getattr(cfg, "amp_dtype", "bfloat16") == "float16" else torch.bfloat16
        self.channels_last = bool(getattr(cfg, "channels_last", False))

        self.distiller = distiller.to(self.device)
        if getattr(cfg, "sync_bn", False) and self.dist.enabled:  # CUDA only (parse_config refuses the CPU)
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(distiller.student)  # in place: the same parameters
        if self.channels_last:
            distiller.to(memory_format=torch.channels_last)
        if self.compiled:  # in place (nn.Module.compile): state-dict keys and checkpoints are unchanged
            for module in distiller.networks().values():
                module.compile(mode=getattr(cfg, "compile_mode", "reduce-overhead"), dynamic=False)
        self.arch = getattr(cfg, "arch", None) or type(distiller.student).__name__

        if cfg.batch_size % self.dist.world_size:
            raise TopKDError(f"--batch_size {cfg.batch_size} must be divisible by the number of processes "
                             f"({self.dist.world_size})")
        self.batch_size = cfg.batch_size // self.dist.world_size
        params = [p for p in distiller.learnable_parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                         **({"fused": True} if self.compiled else {}))  # fused: one CUDA kernel
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=list(cfg.lr_decay_epochs),
                                                              gamma=cfg.lr_decay_rate)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        # a method's pre-training stage (distiller.zoo.pretrain): epochs of its own, with an SGD of its own
        self.init_epochs, self.init_done, self.init_optimizer = int(getattr(distiller, "init_epochs", 0)), 0, None
        if hasattr(distiller, "pretrain_parameters"):
            if self.dist.enabled:
                raise TopKDError(f"{type(distiller).__name__} has a pre-training stage, which runs on one process; "
                                 f"run it without torchrun")
            self.init_optimizer = torch.optim.SGD(distiller.pretrain_parameters(), lr=distiller.pretrain_lr(cfg.lr),
                                                  momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.train_model = distiller
        if self.dist.enabled:
            distiller._ddp_params_and_buffers_to_ignore = [  # the frozen networks: neither reduced nor broadcast
                f"{attr}.{name}" for attr, net in distiller.frozen_networks().items()
                for name, _ in [*net.named_parameters(), *net.named_buffers()]]
            self.train_model = DistributedDataParallel(
                distiller, device_ids=[self.device.index] if self.device.type == "cuda" else None)

        self.train_sampler = KeyedSampler(DistributedSampler(
            train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True, seed=int(cfg.seed),
            drop_last=False))
        per_rank = len(self.train_sampler)
        static = self.compiled and per_rank >= self.batch_size  # compiled steps: one batch shape
        self.train_loader = self._loader(KeyedItems(train_set, int(cfg.seed)), self.train_sampler,
                                         drop_last=static or (per_rank > 1 and per_rank % self.batch_size == 1))
        self.test_loader = self._eval_loader(test_set)
        self.val_loader = self._eval_loader(val_set) if val_set is not None else None
        self.selected_by = "val" if self.val_loader is not None else "test"

        self.last_path, self.best_path = (os.path.join(self.run_dir, f"{self.arch}_{k}.pth") for k in ("last", "best"))
        self.start_epoch, self.global_step, self.writer = 1, 0, None
        self.best = {"score": -math.inf, "acc": 0.0, "epoch": 0, "val_acc": None}
        self.last: Dict[str, Any] = {}
        # top-1 (percent) of every epoch from 1 on: test, and validation when there is a validation set
        self.per_epoch: Dict[str, list] = {"test_top1": [], **({"val_top1": []} if val_set is not None else {})}
        self.max_steps = int(getattr(cfg, "max_steps", 0) or 0)  # --max_steps: a cap over the whole run

    def _loader(self, dataset: Dataset, sampler, drop_last: bool = False) -> DataLoader:
        if getattr(self.cfg, "data_on_device", False):  # the whole set on the device, same keyed draws
            from datasets.device_data import DeviceLoader  # the GPU fast path, imported where used

            return DeviceLoader(dataset, sampler, self.batch_size, self.device, drop_last=drop_last)
        workers = int(getattr(self.cfg, "num_workers", 0))
        # The loader's own generator draws the worker base seeds, so the global stream (dropout, ...) is
        # consumed the same way for any worker count; training items seed the workers' generators themselves.
        generator = torch.Generator().manual_seed(int(getattr(self.cfg, "seed", 0)))
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda", drop_last=drop_last, generator=generator,
                          persistent_workers=workers > 0)

    def _eval_loader(self, dataset: Dataset) -> DataLoader:
        """Every ``world_size``-th item from ``rank`` on, no padding: each item is evaluated once."""
        return self._loader(dataset, range(self.dist.rank, len(dataset), self.dist.world_size))

    def _batch(self, batch) -> Dict[str, Any]:
        """``{field: entry}`` of a batch (a tuple by position; a dict item as it is), tensors on the device."""
        if self.compiled:  # outputs of the previous step's CUDA-graph replays may be overwritten from here
            torch.compiler.cudagraph_mark_step_begin()
        tuple_ok = isinstance(batch, (list, tuple)) and 2 <= len(batch) <= len(self.fields)
        if not (tuple_ok or isinstance(batch, dict)):
            raise TopKDError(f"dataset items must be tuples ({', '.join(self.fields)}) with 2 to {len(self.fields)} "
                             f"entries (the fields the data set declares)")
        out = {}
        for name, value in (batch if isinstance(batch, dict) else dict(zip(self.fields, batch))).items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, non_blocking=True)
                if name == "image" and self.channels_last and value.ndim == 4:
                    value = value.contiguous(memory_format=torch.channels_last)
            out[name] = value
        return out

    def _skipped_prefixes(self) -> tuple:
        """State-dict prefixes not stored under ``distiller``: the student (stored as ``model``) and every
        frozen sub-network (teachers, a frozen RipsNet), which the stage script rebuilds from its own file."""
        prefixes = ["student."]
        for name, module in self.distiller.named_modules():
            params = list(module.parameters())
            if name and not name.startswith(tuple(prefixes)) and params and not any(p.requires_grad for p in params):
                prefixes.append(f"{name}.")
        return tuple(prefixes)

    def _state(self, epoch: int, rng_ranks: list) -> Dict[str, Any]:
        """The checkpoint dict. ``rng_ranks``: every process's RNG state, in rank order."""
        skip = self._skipped_prefixes()
        return {
            "model": self.distiller.student.state_dict(), "arch": self.arch,
            **{k: getattr(self.cfg, k, None) for k in ("num_classes", "in_channels", "dataset")},
            "epoch": epoch, "selected_by": self.selected_by, **{f"best_{k}": v for k, v in self.best.items()},
            **{f"last_{k}": v for k, v in self.last.items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": rng_ranks[0], "config": self.config(),
            "distiller": {k: v for k, v in self.distiller.state_dict().items() if not k.startswith(skip)},
            "probes": {k: dict(v) for k, v in self.probe_values.items()},
            "per_epoch": {k: list(v) for k, v in self.per_epoch.items()},
            **({"rng_ranks": rng_ranks} if len(rng_ranks) > 1 else {}),
            **({"init": {"epoch": self.init_done, "optimizer": self.init_optimizer.state_dict()}} if not epoch else {}),
        }

    def config(self) -> Dict[str, Any]:
        """The configuration recorded in config.yaml and the checkpoints: the options, what ran (``amp`` and
        ``compile`` off where they do not apply), the identity and ``--resume_override``'s history."""
        identity = {"identity": self.identity.to_dict()} if self.identity is not None else {}
        return plain({**vars(self.cfg), "amp": self.amp, "compile": self.compiled, "resume_history": self.history,
                      **identity})

    def _resume(self) -> None:
        """Load the checkpoint ``resume`` names, refusing another network, method or fixed setting first."""
        path = self.last_path if self.resume == "auto" else str(self.resume)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--resume: no checkpoint at {path}; start without --resume or pass a "
                                    f"checkpoint path")
        ckpt = load_checkpoint(path)
        if "optimizer" not in ckpt:
            raise TopKDError(f"--resume: checkpoint {path} has no optimizer state (not a training checkpoint)")
        student = self.distiller.student
        diffs = state_dict_differences(student.state_dict(), ckpt["model"])
        if ckpt.get("arch") not in (None, self.arch) or diffs:
            raise TopKDError(f"--resume: checkpoint {path} holds a {ckpt.get('arch') or 'network'}, but this run "
                             f"trains {self.arch} (another architecture or class count?): {'; '.join(diffs)}")
        stored, override = ckpt.get("config") or {}, bool(getattr(self.cfg, "resume_override", False))
        written, here = _method(stored), _method(vars(self.cfg))
        if stored and not override and written != here:
            raise TopKDError(f"--resume: {path} was written by {written}, not by {here} as this run is; resume it "
                             f"with the command that wrote it, or start a new --run_dir")
        done = int(ckpt["epoch"])
        note = check_epochs(path, done, stored.get("epochs"), int(self.cfg.epochs))
        changes = resume_changes(stored, self.identity)
        entry = check_resume(path, changes, override, done + 1)
        student.load_state_dict(ckpt["model"])
        missing, unexpected = self.distiller.load_state_dict(ckpt.get("distiller", {}), strict=False)
        missing = [k for k in missing if not k.startswith(self._skipped_prefixes())]
        if missing or unexpected:
            raise TopKDError(f"--resume: {path} holds the state of {written} with other parts than this run builds "
                             f"(stored but not built: {unexpected[:3]}; built but not stored: {missing[:3]}): resume "
                             f"with the options that wrote it (e.g. the same --distill, -d, --method), or start a "
                             f"new --run_dir")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.history = list(stored.get("resume_history") or [])
        if note:
            log.info(note)
        if entry is not None:  # --resume_override: cfg's optimisation from the resumed epoch on (lr decayed as due)
            cfg, milestones = self.cfg, sorted(int(m) for m in self.cfg.lr_decay_epochs)
            self.scheduler.milestones = Counter(milestones)
            self.scheduler.gamma = float(cfg.lr_decay_rate)
            self.scheduler.base_lrs = [float(cfg.lr)] * len(self.optimizer.param_groups)
            lr = float(cfg.lr) * float(cfg.lr_decay_rate) ** bisect.bisect_right(milestones, self.scheduler.last_epoch)
            for group in self.optimizer.param_groups:
                group.update(lr=lr, initial_lr=float(cfg.lr), momentum=float(cfg.momentum),
                             weight_decay=float(cfg.weight_decay))
            self.scheduler._last_lr = [lr] * len(self.optimizer.param_groups)
            self.history.append(entry)
            log.info(f"--resume_override: from epoch {done + 1}: {format_changes(changes)}")
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        ranks = ckpt.get("rng_ranks")
        if ranks and len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])  # each process continues its own random stream
        elif self.is_main and ckpt.get("rng"):
            set_rng_state(ckpt["rng"])  # another process count: the others keep their fresh seeds
        self.start_epoch = done + 1
        init = ckpt.get("init") if not done and self.init_optimizer is not None else None  # killed in pre-training
        if init:
            self.init_optimizer.load_state_dict(init["optimizer"])
        self.init_done = int(init["epoch"]) if init else self.init_epochs if done else 0
        self.best = {k: ckpt.get(f"best_{k}", v) for k, v in self.best.items()}
        self.last = {k: ckpt.get(f"last_{k}") for k in ("acc", "top5", "val_acc")}
        self.probe_values = {k: dict(v) for k, v in (ckpt.get("probes") or {}).items()}
        stored_epochs = ckpt.get("per_epoch") or {}  # a checkpoint written before it was kept: None per epoch
        self.per_epoch = {k: list(stored_epochs.get(k) or [None] * done) for k in self.per_epoch}
        self.global_step = done * len(self.train_loader)
        log.info(f"resumed from {path} at epoch {self.start_epoch} (best {self.best['acc']:.2f} "
                 f"at epoch {self.best['epoch']})")

    def train_epoch(self, epoch: int, optimizer=None) -> Dict[str, float]:
        """One pass over the training set -> mean of every loss term, ``loss`` and ``top1`` (percent)."""
        optimizer = optimizer or self.optimizer
        self.distiller.train()
        self.train_sampler.set_epoch(epoch)
        if hasattr(self.distiller, "set_epoch"):  # the one epoch channel (DKD's warm-up reads it)
            self.distiller.set_epoch(epoch)
        sums, count = {}, 0
        show = self.is_main and sys.stderr.isatty()
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}", leave=False, disable=not show, dynamic_ncols=True)
        for step, batch in enumerate(bar, 1):
            fields = self._batch(batch)
            image, target = fields.pop("image"), fields.pop("target")
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                logits, losses = self.train_model(image, target, **fields)
            values = torch.stack([loss.detach().float() for loss in losses.values()]).tolist()
            self.global_step += 1
            if all_reduce_sum([sum(not math.isfinite(v) for v in values)], self.device, self.dist)[0]:
                bad = ", ".join(f"{n} = {v}" for n, v in zip(losses, values) if not math.isfinite(v))
                good = self.last_path if os.path.isfile(self.last_path) else "none saved yet"
                raise DivergedError(f"non-finite loss at epoch {epoch}, step {step} (global step {self.global_step}): "
                                    f"{bad or 'on another process'}; stopped without writing checkpoints; last good "
                                    f"checkpoint: {good} (lower --lr or check the data, then --resume)")
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(sum(losses.values())).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            record = {**dict(zip(losses, values)), "loss": sum(values),
                      "top1": 100.0 * topk_correct(logits.detach(), target, ks=(1,))[0] / max(len(target), 1)}
            for key, value in record.items():
                sums[key] = sums.get(key, 0.0) + value * len(target)
            count += len(target)
            if show and step % self.cfg.print_freq == 0:
                bar.set_postfix(loss=f"{record['loss']:.3f}", top1=f"{record['top1']:.1f}")
            if self.max_steps and self.global_step >= self.max_steps:
                break
        bar.close()
        keys = sorted(sums)
        totals = all_reduce_sum([sums[k] for k in keys] + [count], self.device, self.dist)
        return {k: v / max(totals[-1], 1) for k, v in zip(keys, totals[:-1])}

    def pretrain_epoch(self, k: int) -> None:
        """Epoch ``k`` of the method's pre-training stage: a pass keyed (and announced to the method) as epoch
        ``-k`` under its own optimizer, then a checkpoint of epoch 0 holding the stage's progress (``init``), so a
        run killed in the stage resumes inside it. Its steps do not count towards ``--max_steps``."""
        steps = self.global_step
        train = self.train_epoch(-k, self.init_optimizer)
        self.global_step, self.init_done = steps, k
        rng_ranks = gather_objects(get_rng_state(), self.dist)
        if self.is_main:
            save_torch(self._state(0, rng_ranks), self.last_path)
        self._scalars("pretrain/", train, k)
        log.info(f"pre-training epoch {k}/{self.init_epochs} | loss {train['loss']:.4f}")

    @torch.no_grad()
    def evaluate(self, loader: DataLoader) -> Dict[str, float]:
        """Student accuracy over ``loader`` -> ``{"loss", "top1", "top5"}`` (percent), summed over processes."""
        self.distiller.eval()
        broadcast_buffers(self.distiller.student, self.dist)
        loss, c1, c5, n = 0.0, 0, 0, 0
        for batch in loader:
            fields = self._batch(batch)
            image, target = fields["image"], fields["target"]
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
                logits = self.distiller(image)
            loss += float(F.cross_entropy(logits.float(), target, reduction="sum"))
            k1, k5 = topk_correct(logits, target, ks=(1, 5))
            c1, c5, n = c1 + k1, c5 + k5, n + len(target)
        loss, c1, c5, n = all_reduce_sum([loss, c1, c5, n], self.device, self.dist)
        n = max(n, 1)
        return {"loss": loss / n, "top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n}

    def _run_probes(self, epoch: int, final: bool) -> None:
        """Measure the student with every probe due this epoch (``final``: the run's last epoch); rank 0 only."""
        for probe in self.probes if self.is_main else ():
            if not (final or (probe.every and epoch % int(probe.every) == 0)):
                continue
            start = time.perf_counter()
            values = {k: float(v) for k, v in probe.measure(self.distiller.student).items()}
            self.probe_values[probe.name] = {"epoch": epoch, **values}
            self._scalars(f"{probe.name}/", values, epoch)
            shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
            log.info(f"{probe.name} (epoch {epoch}, {time.perf_counter() - start:.1f} s): {shown}")

    def _scalars(self, prefix: str, values: Dict[str, float], epoch: int) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(prefix + key, value, epoch)
            self.writer.flush()

    def fit(self) -> Dict[str, Any]:
        """Train from epoch 1 (or the resumed one) to ``cfg.epochs``; returns the summary dict."""
        cfg = self.cfg
        times, train_times = [], []
        try:
            if self.is_main:
                for path in (self.last_path, self.best_path, os.path.join(self.run_dir, "config.yaml")):
                    remove_stale_temps(path)  # left by a run killed while writing
            if self.resume:
                self._resume()
            if self.is_main:
                os.makedirs(self.run_dir, exist_ok=True)
                write_yaml(os.path.join(self.run_dir, "config.yaml"), self.config(), sort_keys=True)
                from torch.utils.tensorboard import SummaryWriter  # rank 0 only; 0.13 s of start-up elsewhere

                self.writer = SummaryWriter(os.path.join(self.run_dir, "tb"), purge_step=self.start_epoch)
            log.info(f"run folder {self.run_dir}; {self.arch} on {self.device}"
                     f"{f' x{self.dist.world_size} processes' if self.dist.enabled else ''}")
            log.info(f"recipe {getattr(cfg, 'recipe', None) or 'custom'}: SGD lr {cfg.lr} momentum {cfg.momentum} wd "
                     f"{cfg.weight_decay}, batch {cfg.batch_size}, {cfg.epochs} epochs, lr x{cfg.lr_decay_rate} at "
                     f"{list(cfg.lr_decay_epochs)}; loss = {self.distiller.loss_summary()}")
            log.info("model selection: best checkpoint by validation top-1" if self.selected_by == "val" else
                     "model selection: best checkpoint by test top-1 (no --val_fraction; the papers' convention)")
            for k in range(self.init_done + 1, self.init_epochs + 1):
                self.pretrain_epoch(k)
            for epoch in range(self.start_epoch, cfg.epochs + 1):
                start = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                train = self.train_epoch(epoch)
                train_times.append(time.perf_counter() - start)
                test = self.evaluate(self.test_loader)
                val = self.evaluate(self.val_loader) if self.val_loader is not None else None
                self.scheduler.step()
                val_acc, score = (val["top1"] if val else None), (val or test)["top1"]
                improved = score > self.best["score"]
                if improved:
                    self.best = {"score": score, "acc": test["top1"], "epoch": epoch, "val_acc": val_acc}
                self.last = {"acc": test["top1"], "top5": test["top5"], "val_acc": val_acc}
                for key, stats in (("test_top1", test), ("val_top1", val)):
                    if key in self.per_epoch:
                        self.per_epoch[key].append(stats["top1"])
                stopping = bool(self.max_steps and self.global_step >= self.max_steps)
                self._run_probes(epoch, final=epoch == cfg.epochs or stopping)
                rng_ranks = gather_objects(get_rng_state(), self.dist)  # a collective: every rank joins
                if self.is_main:
                    state = self._state(epoch, rng_ranks)
                    save_torch(state, self.last_path)
                    if improved:
                        save_torch(state, self.best_path)
                barrier(self.dist)
                times.append(time.perf_counter() - start)
                for split, stats in (("train", train), ("test", test), ("val", val or {})):
                    self._scalars(f"{split}/", stats, epoch)
                self._scalars("", {"lr": lr, "time/epoch_seconds": times[-1]}, epoch)
                terms = " ".join(f"{k} {v:.4f}" for k, v in train.items() if k not in ("loss", "top1"))
                log.info(f"epoch {epoch}/{cfg.epochs} | lr {lr:.4g} | train loss {train['loss']:.4f} ({terms}) "
                         f"top1 {train['top1']:.2f} | test loss {test['loss']:.4f} top1 {test['top1']:.2f} "
                         f"top5 {test['top5']:.2f}{f' | val top1 {val_acc:.2f}' if val else ''} | best "
                         f"{self.best['acc']:.2f} (epoch {self.best['epoch']}) | {times[-1]:.1f} s")
                if stopping:
                    log.info(f"stopping after {self.global_step} steps (--max_steps {self.max_steps})")
                    break
        finally:
            if self.writer is not None:
                self.writer.close()
        summary = {
            **{f"best_{k}": self.best[k] for k in ("acc", "epoch", "val_acc")}, "selected_by": self.selected_by,
            **{f"last_{k}": self.last.get(k) for k in ("acc", "top5", "val_acc")}, "epochs_run": len(times),
            "seconds_per_epoch": sum(times) / len(times) if times else None,
            "train_seconds_per_epoch": sum(train_times) / len(train_times) if train_times else None,
            "best_checkpoint": self.best_path, "last_checkpoint": self.last_path,
            "probes": {k: dict(v) for k, v in self.probe_values.items()},
            "per_epoch": {k: list(v) for k, v in self.per_epoch.items()},
        }
        if self.is_main and times:  # summary.yaml: its format is in docs/topology.md
            settings = {p.name: p.settings() for p in self.probes if hasattr(p, "settings")}
            write_yaml(os.path.join(self.run_dir, "summary.yaml"), plain(
                {"format": 1, "arch": self.arch, "dataset": getattr(cfg, "dataset", None), **summary,
                 "probe_settings": settings}))
        return summary


def _method(cfg: Dict[str, Any]) -> str:
    """``--distill <name>`` of a recorded configuration, or the teacher stage's description."""
    return f"--distill {cfg['distill']}" if cfg.get("distill") else "a teacher run (train_teacher.py)"


def format_summary(s: Dict[str, Any]) -> str:
    """The closing lines: best and last test top-1, timing, checkpoints, the probes' values."""
    def num(value, unit=""):
        return "n/a" if value is None else f"{value:.2f}{unit}"

    val = f", validation {num(s['best_val_acc'])}" if s.get("best_val_acc") is not None else ""
    lines = [f"best test top-1 {num(s['best_acc'])} (epoch {s['best_epoch']}, selected by "
             f"{'validation' if s['selected_by'] == 'val' else 'test'} top-1{val}); last test top-1 "
             f"{num(s['last_acc'])}, top-5 {num(s['last_top5'])}",
             f"seconds per epoch {num(s['seconds_per_epoch'], ' s')} (training only "
             f"{num(s['train_seconds_per_epoch'], ' s')}) over {s['epochs_run']} epochs; checkpoints: "
             f"{s['best_checkpoint']}, {s['last_checkpoint']}"]
    return "\n".join(lines + [f"{name} (epoch {values.get('epoch')}): " + " ".join(
        f"{k} {v:.4g}" for k, v in values.items() if k != "epoch") for name, values in s["probes"].items()])


def fit(distiller, data, cfg, run: Run, probes: Optional[Sequence[Any]] = None) -> Dict[str, Any]:
    """Train ``distiller`` on a ``DataBundle`` (train, optional val, test; its declared ``fields``) in the run's
    folder (``run``: `engine.record.plan_run`'s, continuing the run there when it says so) -> the summary. The
    one entry point of the teacher and student stages."""
    trainer = Trainer(distiller, data.train, data.test, cfg, run.folder, val_set=data.val, probes=probes,
                      fields=data.fields, resume=run.resume, identity=run.identity)
    summary = trainer.fit()
    log.info(format_summary(summary))
    return summary
