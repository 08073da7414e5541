"""The YAML manifest of a stage-2 folder: what produced it, its shards, its PI parameters.

``manifest.yaml`` holds ``config`` (everything that determines the data: source identity, data set,
layer, batch size, passes, dims, shard size, seed ...), ``shards`` (one record per finished shard:
index, clouds, start, files), ``counts``, ``pi`` (per dim: file and fitted parameters) and
``versions``. It is rewritten atomically after every finished shard, so a shard is finished exactly
when it is recorded here.
"""
from __future__ import annotations

import os
import platform
from typing import Any, Dict, List, Optional

from topkd_io import read_yaml, write_yaml

MANIFEST = "manifest.yaml"
FORMAT = "topkd-stage2-v1"


def versions() -> Dict[str, str]:
    import gudhi
    import numpy
    import torch

    return {"python": platform.python_version(), "numpy": str(numpy.__version__), "torch": str(torch.__version__),
            "gudhi": str(gudhi.__version__)}


def manifest_path(folder: str) -> str:
    return os.path.join(folder, MANIFEST)


def _load_yaml(path: str) -> Any:
    return read_yaml(path, "stage-2 file", "rerun generate_PCD_PI.py to regenerate it")


def read_manifest(folder: str) -> Dict[str, Any]:
    """Parse ``<folder>/manifest.yaml``; FileNotFoundError / ValueError with a hint when unusable."""
    path = manifest_path(folder)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; pass a folder written by generate_PCD_PI.py")
    data = _load_yaml(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a stage-2 manifest (format {FORMAT}); regenerate the folder")
    return data


def read_pi_params(path: str, dim: int = 0):
    """``PIParams`` of the dimension-``dim`` images from a stage-2 folder or its ``manifest.yaml``, or from
    a YAML file holding the parameters alone (``PIParams.save_yaml``)."""
    from topology.point_cloud_pi import PIParams

    if os.path.isdir(path):
        path = manifest_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"persistence-image parameters {path} not found; pass the stage-2 folder or "
                                f"its manifest.yaml (--pi_params)")
    data = _load_yaml(path) or {}
    if isinstance(data, dict) and isinstance(data.get("pi"), dict):  # a stage-2 manifest
        entry = data["pi"].get(dim) or data["pi"].get(str(dim))
        if not entry:
            raise ValueError(f"{path} holds no persistence images of dimension {dim} (has {sorted(data['pi'])}); "
                             f"rerun generate_PCD_PI.py with --dims {dim}")
        data = entry["params"]
    return PIParams.from_dict(data)


def write_manifest(folder: str, manifest: Dict[str, Any]) -> None:
    write_yaml(manifest_path(folder), manifest)


def new_manifest(config: Dict[str, Any]) -> Dict[str, Any]:
    return {"format": FORMAT, "config": config, "shards": [], "counts": {}, "pi": {}, "complete": False,
            "versions": versions()}


def config_differences(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """``key: old -> new`` for every entry (nested dicts flattened with dots) that differs."""
    out: List[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key), b.get(key), f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix[:-1]}: {a!r} -> {b!r}")

    walk(old, new, "")
    return out


def stage2_state(folder: str, identity):
    """`engine.run_folder.FolderState` of a stage-2 folder for a run of ``identity``: finished when its manifest
    is complete with the same recorded identity. A manifest without a recorded identity (an older folder) is
    left to `check_resumable`, which compares its configuration when the run starts."""
    from engine.run_folder import FolderState, compare, stored_identity

    path = manifest_path(folder)
    if not os.path.isfile(path):
        return compare(folder, None, identity, started=False, done=False)
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        return FolderState(folder, "conflict", f"holds an unreadable manifest ({' '.join(str(exc).split())})")
    stored = stored_identity(manifest)
    if stored is None:
        return FolderState(folder, "partial", "holds stage-2 data without a recorded identity (checked against its "
                           "manifest's configuration)")
    return compare(folder, stored, identity, started=True, done=bool(manifest.get("complete")),
                   what="stage-2 run")


DEFAULT_ROOT = os.path.join("ripsnet", "data")


def find_stage2(root: str = DEFAULT_ROOT, arch: Optional[str] = None, dataset: Optional[str] = None) -> str:
    """The one complete stage-2 folder under ``root`` (of teacher ``arch`` on ``dataset`` when given), as
    ``train_ripsnet.py`` takes it without ``--data_dir``; printed in one line. None or several -> an error
    naming what was found."""
    found = []
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            try:
                manifest = read_manifest(folder)
            except (OSError, ValueError):
                continue
            cfg = manifest.get("config") or {}
            if not manifest.get("complete"):
                continue
            if arch is not None and (cfg.get("source") or {}).get("arch") != arch:
                continue
            if dataset is not None and cfg.get("dataset") != dataset:
                continue
            found.append(folder)
    what = " ".join(p for p in (f"of teacher {arch}" if arch else "", f"on {dataset}" if dataset else "") if p)
    if len(found) == 1:
        print(f"stage 2: --data_dir not given; took {found[0]} (the one complete stage-2 folder {what} under "
              f"{root})".replace("  ", " "), flush=True)
        return found[0]
    if not found:
        raise FileNotFoundError(f"no complete stage-2 folder {what} under {root}; run generate_PCD_PI.py first, or pass "
                                f"--data_dir".replace("  ", " "))
    shown = ", ".join(found[:6]) + (f" (+{len(found) - 6} more)" if len(found) > 6 else "")
    raise ValueError(f"several complete stage-2 folders {what} under {root}: {shown}; pass --data_dir (or --model_t "
                     f"/ --dataset to choose)".replace("  ", " "))


def check_resumable(folder: str, config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The existing manifest of ``folder`` if its config equals ``config``; None when there is none.

    Raises ValueError naming what differs when the folder was produced by another teacher/config.
    """
    if not os.path.isfile(manifest_path(folder)):
        return None
    manifest = read_manifest(folder)
    diffs = config_differences(manifest.get("config", {}), config)
    if diffs:
        shown = "; ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")
        raise ValueError(f"{folder} holds stage-2 data from another teacher/config ({shown}); "
                         "pass a new --out_dir, or --overwrite to replace it")
    return manifest
