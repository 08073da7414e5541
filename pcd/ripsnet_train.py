"""Stage 3: fit a RipsNet to the exact persistence images of a stage-2 folder (TopKD recipe).

Adamax (lr 5e-4), MSE, a seeded 75/25 train/validation split, batch 64 (validation 32), early stopping on the
validation MSE (patience 50 epochs, improvement > ``min_delta``). The best model is written atomically to
``<run_dir>/<pooling>_best.pth`` (weights, units, pooling, PI parameters, the stage-2 manifest), the state for
``--resume`` to ``<run_dir>/<pooling>_last.pth``.
"""
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from engine.record import check_epochs, check_resume, compare, config_changes, format_changes, read_stored_identity
from engine.stage import get_rng_state, seed_everything, set_rng_state
from topkd_io import DamagedFileError, DivergedError, TopKDError, load_checkpoint, load_npy, save_torch, write_yaml
from topology.ripsnet import RipsNet, load_ripsnet, save_ripsnet

from .manifest import check_images, check_ripsnet_pi, open_verified, pi_entry, rebuild_command

log = logging.getLogger(__name__)


# On --resume: options fixed by the network's shape, and the optimisation options refused when changed
# unless --resume_override (engine.record states the rule).
RESUME_FIXED = ("dim", "pooling", "units")
RESUME_COMPARED = ("data_dir", "seed", "val_fraction", "batch_size", "lr", "patience", "min_delta")


@dataclass
class RipsNetTrainConfig:
    data_dir: str
    dim: int = 0
    pooling: str = "mean"
    units: Optional[List[int]] = None
    lr: float = 5e-4
    batch_size: int = 64
    val_batch_size: int = 32
    val_fraction: float = 0.25
    epochs: int = 1000
    patience: int = 50
    min_delta: float = 0.0
    seed: int = 0
    workers: int = 0
    device: str = "cpu"
    run_dir: str = ""
    resume: bool = False
    resume_override: bool = False
    progress: bool = True
    verify: bool = True  # check the stage-2 files' SHA-256 (False: sizes and the manifest's checksum only)
    extra: Dict[str, Any] = field(default_factory=dict)


def ripsnet_files(pooling: str) -> tuple:
    """What a stage-3 run writes in its folder (removed by ``--overwrite``)."""
    return ("config.yaml", "summary.yaml", "tb", f"{pooling}_best.pth", f"{pooling}_last.pth")


def ripsnet_state(folder: str, identity, pooling: str):
    """`engine.record.FolderState` of a stage-3 folder: started when ``<pooling>_last.pth`` exists,
    finished when ``summary.yaml`` (written when the run ends: early stop or the last epoch) exists too."""
    started = os.path.isfile(os.path.join(folder, f"{pooling}_last.pth"))
    done = started and os.path.isfile(os.path.join(folder, "summary.yaml"))
    return compare(folder, read_stored_identity(os.path.join(folder, "config.yaml")), identity,
                   started=started, done=done, what="RipsNet run")


class Stage2Data(Dataset):
    """Items ``(cloud float32 [N, D], pi float32 [R*R])`` of homology dim ``dim`` of a finished stage-2 folder,
    checked when opened (`pcd.manifest.open_verified`, `check_images`; ``verify=False``: file sizes only). The
    point-cloud shards are memory-mapped read-only on first use."""

    def __init__(self, folder: str, dim: int, verify: bool = True):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"stage-2 folder {folder} not found; run generate_PCD_PI.py first and pass its "
                                    f"--out_dir")
        self.folder, self.dim = folder, int(dim)
        self.manifest = manifest = open_verified(folder, [self.dim], verify)
        self.rebuild = rebuild = rebuild_command(folder, manifest)
        pis = manifest.get("pi") or {}
        if not manifest.get("complete") or not pis or not manifest.get("shards"):
            state = "is unfinished" if not manifest.get("complete") else "is marked complete but holds no " \
                f"{'persistence images' if not pis else 'point clouds'}"
            raise TopKDError(f"stage-2 folder {folder} {state}; rerun generate_PCD_PI.py to complete it: {rebuild}")
        entry = pi_entry(manifest, self.dim)
        if entry is None:
            have = sorted(int(d) for d in pis)
            raise TopKDError(f"{folder} has no persistence images for dim {dim} (it has dims {have}); pass "
                             f"--dim {have[0]}, or regenerate it with --dims {dim}")
        self.files, self.sizes = [r["pcd"] for r in manifest["shards"]], [int(r["clouds"]) for r in manifest["shards"]]
        self.starts, self._maps = np.cumsum([0] + self.sizes), {}
        self.pi_path, self.pi_params = os.path.join(folder, entry["file"]), entry["params"]
        self.pis = load_npy(self.pi_path, "persistence-image file", rebuild)
        if len(self.pis) != len(self):
            raise DamagedFileError(f"{self.pi_path} holds {len(self.pis)} images for {len(self)} clouds; rebuild it "
                                   f"with: {rebuild}")
        bad = np.flatnonzero(~np.isfinite(self.pis).all(axis=1))
        if len(bad):
            raise DamagedFileError(f"{self.pi_path} has non-finite values in {len(bad)} persistence image(s) (first: "
                                   f"cloud {bad[0]}); rebuild it with: {rebuild}")
        check_images(folder, manifest, self.dim, self.pis)
        self.input_dim, self.pi_size = int(self._shard(0).shape[2]), int(self.pis.shape[1])

    def _shard(self, k: int) -> np.ndarray:
        if k not in self._maps:
            path = os.path.join(self.folder, self.files[k])
            arr = load_npy(path, "point-cloud shard", self.rebuild)
            if arr.shape[0] != self.sizes[k]:
                raise DamagedFileError(f"shard {path} holds {arr.shape[0]} clouds but the manifest says "
                                       f"{self.sizes[k]}; rebuild it with: {self.rebuild}")
            self._maps[k] = arr
        return self._maps[k]

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor]:
        k = int(np.searchsorted(self.starts, i, side="right") - 1)
        return (torch.from_numpy(np.array(self._shard(k)[i - self.starts[k]])),
                torch.from_numpy(np.array(self.pis[i], dtype=np.float32)))

    def __getstate__(self):  # DataLoader workers map the files themselves
        return {**self.__dict__, "_maps": {}, "pis": None}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.pis = load_npy(self.pi_path, "persistence-image file", self.rebuild)


def split_indices(n: int, val_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of ``range(n)`` cut into (train, val); val gets ``ceil(val_fraction * n)`` (>= 1)."""
    if n < 2:
        raise TopKDError(f"need at least 2 clouds to split into train and validation, got {n}")
    n_val = min(n - 1, max(1, math.ceil(val_fraction * n)))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str) -> Dict[str, float]:
    """Validation MSE (per pixel) and the RipsNet-vs-exact image error on ``loader``'s clouds: mean_abs / max_abs
    absolute pixel errors, rel_l2 = ||pred - exact||_F / ||exact||_F over all of its images."""
    model.eval()
    sq = ab = ref = mx = 0.0
    count = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        diff = (model(x) - y).double()
        sq += float((diff ** 2).sum())
        ab += float(diff.abs().sum())
        mx = max(mx, float(diff.abs().max()))
        ref += float((y.double() ** 2).sum())
        count += diff.numel()
    return {"mse": sq / count, "mean_abs": ab / count, "max_abs": mx, "rel_l2": (sq ** 0.5) / max(ref ** 0.5, 1e-300)}


class RipsNetTrainer:
    """Early-stopped RipsNet fit on one stage-2 folder; ``fit()`` -> summary dict."""

    def __init__(self, cfg: RipsNetTrainConfig):
        for name in ("epochs", "patience", "batch_size", "val_batch_size"):
            if getattr(cfg, name) < 1:
                raise TopKDError(f"--{name} must be at least 1, got {getattr(cfg, name)}")
        self.cfg = cfg
        seed_everything(cfg.seed)
        self.data = Stage2Data(cfg.data_dir, cfg.dim, verify=cfg.verify)
        train_idx, val_idx = split_indices(len(self.data), cfg.val_fraction, cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = DataLoader(Subset(self.data, train_idx.tolist()), batch_size=cfg.batch_size,
                                       shuffle=True, generator=gen, num_workers=cfg.workers)
        self.val_loader = DataLoader(Subset(self.data, val_idx.tolist()), batch_size=cfg.val_batch_size,
                                     shuffle=False, num_workers=cfg.workers)
        self.n_train, self.n_val = len(train_idx), len(val_idx)
        pixels, side = self.data.pi_size, int(round(self.data.pi_size ** 0.5))
        if side * side != pixels:
            raise TopKDError(f"{cfg.data_dir} holds {pixels}-pixel images, not square R*R ones; regenerate it")
        if cfg.units is not None and cfg.units[-1] != pixels:
            raise TopKDError(f"--units {','.join(map(str, cfg.units))} does not fit {cfg.data_dir}: pass 8 widths "
                             f"ending with the image size {pixels}")
        self.model = RipsNet(self.data.input_dim, cfg.pooling, cfg.units, side).to(cfg.device)
        self.optimizer = torch.optim.Adamax(self.model.parameters(), lr=cfg.lr)
        self.best_path = os.path.join(cfg.run_dir, f"{cfg.pooling}_best.pth")
        self.last_path = os.path.join(cfg.run_dir, f"{cfg.pooling}_last.pth")
        self.state = {"epoch": 0, "best_val_mse": float("inf"), "best_epoch": 0, "bad_epochs": 0, "history": []}

    # ------------------------------------------------------------------ checkpoints
    def _save_best(self) -> None:
        record = dict(pi_params=self.data.pi_params, manifest=self.data.manifest, input_dim=self.data.input_dim,
                      resolution=int(round(self.data.pi_size ** 0.5)), dim=self.cfg.dim)
        check_ripsnet_pi(dict(record, units=self.model.units), self.best_path)  # what it will say agrees with itself
        save_ripsnet(self.model, self.best_path, **record, best_val_mse=self.state["best_val_mse"],
                     epoch=self.state["epoch"],
                     **{k: self.cfg.extra[k] for k in ("identity", "provenance") if k in self.cfg.extra})

    def _save_last(self) -> None:
        save_torch({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "trainer": dict(self.state, history=list(self.state["history"])),
                    "loader_rng": self.train_loader.generator.get_state(),
                    "rng": get_rng_state(), "config": self._config_dict()}, self.last_path)

    def _resume(self) -> None:
        if not os.path.isfile(self.last_path):
            raise FileNotFoundError(f"--resume: {self.last_path} not found; start without --resume")
        ckpt = load_checkpoint(self.last_path)
        old, new = ckpt.get("config", {}), self._config_dict()
        fixed = config_changes(old, new, only=RESUME_FIXED)
        if fixed:
            raise TopKDError(f"--resume: {self.last_path} holds a RipsNet with other {format_changes(fixed)}; "
                             f"use the same options or a new --run_dir")
        done = int(ckpt["trainer"]["epoch"])
        note = check_epochs(self.last_path, done, old.get("epochs"), self.cfg.epochs)
        changes = config_changes(old, new, only=RESUME_COMPARED)
        entry = check_resume(self.last_path, changes, self.cfg.resume_override, done + 1)
        if note:
            log.info(note)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = dict(ckpt["trainer"])
        history = list(old.get("resume_history") or [])
        if entry is not None:  # --resume_override: the new values run from here on
            for group in self.optimizer.param_groups:
                group["lr"] = float(self.cfg.lr)
            history.append(entry)
            log.info(f"--resume_override: from epoch {done + 1}: {format_changes(changes)}")
        self.cfg.extra["resume_history"] = history
        if entry is None or "seed" not in entry["changes"]:
            self.train_loader.generator.set_state(ckpt["loader_rng"])
            set_rng_state(ckpt["rng"])

    def _config_dict(self) -> Dict[str, Any]:
        d = asdict(self.cfg)
        d.update(d.pop("extra"))
        return d

    # ------------------------------------------------------------------ loop
    def _stop(self, epoch: int, step: int, what: str) -> None:
        good = self.last_path if os.path.isfile(self.last_path) else "none saved yet"
        raise DivergedError(f"stage 3 stopped at epoch {epoch}, step {step}: {what}; nothing was saved for this "
                            f"epoch; last good checkpoint: {good}")

    def train_epoch(self, epoch: int = 0) -> float:
        """One pass over the training clouds -> mean MSE. Non-finite clouds, images or loss -> `DivergedError`
        naming the epoch and the step (checkpoints of earlier epochs are kept)."""
        self.model.train()
        total, n = 0.0, 0
        for step, (x, y) in enumerate(self.train_loader, 1):
            x, y = x.to(self.cfg.device), y.to(self.cfg.device)
            for name, t in (("point clouds", x), ("target persistence images", y)):
                if not bool(torch.isfinite(t).all()):
                    self._stop(epoch, step, f"non-finite values in the {name} of {self.cfg.data_dir} (regenerate "
                                            f"that stage-2 folder)")
            loss = nn.functional.mse_loss(self.model(x), y)
            if not bool(torch.isfinite(loss)):
                self._stop(epoch, step, f"non-finite loss term mse = {loss.item()} (lower --lr)")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(x)
            n += len(x)
        return total / max(n, 1)

    def fit(self) -> Dict[str, Any]:
        from torch.utils.tensorboard import SummaryWriter  # tensorboard on first use: 0.13 s of start-up elsewhere

        cfg = self.cfg
        os.makedirs(cfg.run_dir, exist_ok=True)
        if cfg.resume:
            self._resume()
        write_yaml(os.path.join(cfg.run_dir, "config.yaml"), self._config_dict())
        writer = SummaryWriter(os.path.join(cfg.run_dir, "tb"))
        bar = tqdm(range(self.state["epoch"], cfg.epochs), desc="ripsnet", unit="epoch", disable=not cfg.progress,
                   dynamic_ncols=True)
        t0 = time.perf_counter()
        try:
            for epoch in bar:
                if self.state["bad_epochs"] >= cfg.patience:
                    break
                train_mse = self.train_epoch(epoch + 1)
                val_mse = evaluate(self.model, self.val_loader, cfg.device)["mse"]
                if not np.isfinite(val_mse):
                    self._stop(epoch + 1, len(self.train_loader), f"non-finite validation mse = {val_mse} "
                               f"(non-finite held-out clouds or images in {cfg.data_dir}?)")
                self.state["epoch"] = epoch + 1
                self.state["history"].append([epoch + 1, train_mse, val_mse])
                writer.add_scalar("loss/train_mse", train_mse, epoch + 1)
                writer.add_scalar("loss/val_mse", val_mse, epoch + 1)
                if val_mse < self.state["best_val_mse"] - cfg.min_delta:
                    self.state.update(best_val_mse=val_mse, best_epoch=epoch + 1, bad_epochs=0)
                    self._save_best()
                else:
                    self.state["bad_epochs"] += 1
                self._save_last()
                bar.set_postfix(train=f"{train_mse:.3e}", val=f"{val_mse:.3e}",
                                best=f"{self.state['best_val_mse']:.3e}")
        finally:
            bar.close()
            writer.close()
        return self.summary(time.perf_counter() - t0)

    def summary(self, seconds: float) -> Dict[str, Any]:
        """Reload the best weights, measure them on the held-out clouds, write ``summary.yaml``."""
        if not os.path.isfile(self.best_path):
            raise TopKDError(f"no best checkpoint at {self.best_path}; train for at least one epoch")
        self.model.load_state_dict(load_ripsnet(self.best_path)[0].state_dict())
        out = {"best_val_mse": self.state["best_val_mse"], "best_epoch": self.state["best_epoch"],
               "epochs_run": self.state["epoch"], "stopped_early": self.state["bad_epochs"] >= self.cfg.patience,
               "held_out": evaluate(self.model, self.val_loader, self.cfg.device), "n_train": self.n_train,
               "n_val": self.n_val, "checkpoint": self.best_path, "seconds": round(seconds, 2),
               "history": [list(map(float, h)) for h in self.state["history"]]}
        write_yaml(os.path.join(self.cfg.run_dir, "summary.yaml"), {k: v for k, v in out.items() if k != "history"})
        return out
