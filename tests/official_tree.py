"""Test helper (not a test module): a tiny working tree in the official TopKD / RepDistiller layouts, so the
command lines of ``official_commands.txt`` can run there unchanged.

``write_official_tree(root, reference_dir)`` writes, under ``root``:

* ``data/cifar-100-python/`` in torchvision's pickle format (one training image per class, 8 test images;
  tests must replace torchvision's md5 check, see ``fake_md5``);
* the teachers the student lines name, saved the official way (random weights, numpy floats in the
  optimizer state and accuracy): TopKD's ``save_t_models/<arch>_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_
  trial_<n>/<arch>_best.pth`` and RepDistiller's ``save/models/<arch>_vanilla/ckpt_epoch_240.pth``;
* the released RipsNets, byte copies, under ``ripsnet/result/`` (the official naming rule).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from test_datasets import _write_cifar100

# path_t of the official lines -> the architecture it holds (written out by hand from the official layouts)
TEACHERS: Dict[str, str] = {
    "save_t_models/resnet56_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_5/resnet56_best.pth": "resnet56",
    "save_t_models/wrn_40_2_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_2/wrn_40_2_best.pth": "wrn_40_2",
    "save/models/resnet32x4_vanilla/ckpt_epoch_240.pth": "resnet32x4",
    "save/models/ResNet50_vanilla/ckpt_epoch_240.pth": "ResNet50",
}
RIPSNETS = ("cifar100_resnet56_batch64_FCinput_PCD_dim0/mean_best.pth",
            "cifar100_wrn_40_2_batch64_FCinput_PCD_dim0/sum_best.pth")


def official_lines(reference_dir: Path, script: str) -> List[List[str]]:
    """Arguments of every non-comment line of official_commands.txt that runs ``script``."""
    out = []
    for line in (Path(reference_dir) / "official_commands.txt").read_text().splitlines():
        tokens = shlex.split(line, comments=True)
        at = next((i for i, t in enumerate(tokens) if os.path.basename(t) == script), None)
        if at is not None:
            out.append(tokens[at + 1:])
    return out


def flag_values(args: List[str], *names: str) -> List[str]:
    """The values after the first of ``names`` (``--flag v1 v2``, ``--flag=v``); [] when absent."""
    for i, token in enumerate(args):
        for name in names:
            if token.startswith(name + "="):
                return [token.split("=", 1)[1]]
            if token == name:
                values = []
                for value in args[i + 1:]:
                    if value.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", value):
                        break
                    values.append(value)
                return values
    return []


def _official_teacher(arch: str, path: Path, repdistiller: bool) -> None:
    from models import build_model

    torch.manual_seed(len(arch))
    model = build_model(arch, num_classes=100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    opt_state = optimizer.state_dict()
    opt_state["param_groups"][0]["lr"] = np.float64(0.05 * 0.1 ** 3)  # numpy floats, as the official runs hold
    state = {"epoch": 240, "model": model.state_dict(), "optimizer": opt_state}
    state.update({"accuracy": np.float64(70.0)} if repdistiller else {"best_acc": np.float64(72.5)})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def write_official_tree(root: Path, reference_dir: Path) -> Path:
    """Lay out the tree described in the module docstring under ``root``; returns ``root``."""
    root = Path(root)
    _write_cifar100(root / "data", n_train=100, n_test=8)
    for rel, arch in TEACHERS.items():
        _official_teacher(arch, root / rel, repdistiller=rel.startswith("save/models"))
    for rel in RIPSNETS:
        src = Path(reference_dir) / "official_released" / "topkd" / "ripsnet" / "result" / rel
        (root / "ripsnet" / "result" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / "ripsnet" / "result" / rel)
    return root


def fake_md5(monkeypatch) -> None:
    """torchvision compares every CIFAR file's md5 with the official archive; only that check is replaced."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
