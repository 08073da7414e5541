"""A stage-2 folder: ``shards/pcd_<i>.npy`` (float32 ``[S_i, N, D]`` clouds), ``shards/pd_dim<k>_<i>.npz``
(``rows`` float64 ``[M, 2]`` finite (birth, death) rows stacked over the shard's clouds, ``counts`` int64 ``[S_i]``
rows per cloud), ``pi_dim<k>.npy`` (float32 ``[num_clouds, R*R]``) and ``manifest.yaml``, sealed (`topkd_io.seal`).

The manifest holds ``config`` (what determines the data), ``shards`` (index, clouds, start, files with size and
SHA-256), ``counts``, ``pi`` (per dim: file, size, SHA-256, fitted parameters), ``versions``, ``command`` and the
run's ``identity``; it is rewritten after every finished shard. Readers check it and every recorded file
(`open_verified`) and recompute a few images from their diagrams (`check_images`: against forged parameters)."""
import logging
import os
import shlex
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from engine.record import FolderState, compare, stored_identity, versions
from topkd_io import (SEAL_KEY, DamagedFileError, TopKDError, check_seal, pinned_command, read_sealed, verify_files,
                      write_sealed)
from topology.point_cloud_pi import PIParams, persistence_images

log = logging.getLogger(__name__)

FORMAT = "topkd-stage2-v1"
DEFAULT_ROOT = os.path.join("ripsnet", "data")
SHARD_DIR = "shards"


def pcd_name(index: int) -> str:
    return f"{SHARD_DIR}/pcd_{index:05d}.npy"


def diagram_name(dim: int, index: int) -> str:
    return f"{SHARD_DIR}/pd_dim{dim}_{index:05d}.npz"


def pi_name(dim: int) -> str:
    return f"pi_dim{dim}.npy"


def load_diagrams(path: str) -> List[np.ndarray]:
    """A shard's diagram file -> list of ``[k_i, 2]`` float64 arrays, one per cloud."""
    with np.load(path) as data:
        rows, counts = data["rows"], data["counts"]
    return np.split(rows, np.cumsum(counts)[:-1]) if len(counts) else []


def stack_diagrams(diagrams: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    """List of ``[k_i, 2]`` diagrams -> ``{'rows': [sum k_i, 2] float64, 'counts': [n] int64}``."""
    rows = [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in diagrams]
    return {"rows": np.concatenate(rows) if rows else np.zeros((0, 2)),
            "counts": np.array([len(r) for r in rows], dtype=np.int64)}


def manifest_path(folder: str) -> str:
    return os.path.join(folder, "manifest.yaml")


def rebuild_command(folder: str, manifest: Optional[Dict[str, Any]] = None) -> str:
    """The recorded command with ``--out_dir`` naming where the folder is now, else a generic hint."""
    command = (manifest or {}).get("command")
    if isinstance(command, str) and command.strip():
        return pinned_command(command, "--out_dir", folder)
    return f"python generate_PCD_PI.py <the same arguments> --out_dir {shlex.quote(str(folder))}"


def read_manifest(folder: str, check: bool = True) -> Dict[str, Any]:
    path = manifest_path(folder)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; pass a folder written by generate_PCD_PI.py")
    data = read_sealed(path, "stage-2 manifest")
    if data.get("format") != FORMAT:
        raise DamagedFileError(f"{path} is not a stage-2 manifest (format {FORMAT}); regenerate the folder")
    if check:
        check_seal(data, path, rebuild_command(folder, data))
    return data


def write_manifest(folder: str, manifest: Dict[str, Any]) -> None:
    write_sealed(manifest_path(folder), manifest)


def new_manifest(config: Dict[str, Any], command: Optional[str] = None) -> Dict[str, Any]:
    return {"format": FORMAT, "config": config, "shards": [], "counts": {}, "pi": {}, "complete": False,
            "versions": versions(), **({"command": command} if command else {})}


def pi_entry(manifest: Dict[str, Any], dim: int) -> Optional[Dict[str, Any]]:
    """The ``pi`` record of homology dim ``dim`` (YAML may hold the key as int or text), or None."""
    pis = manifest.get("pi") or {}
    return pis.get(dim) or pis.get(str(dim))


def check_images(folder: str, manifest: Dict[str, Any], dim: int, images: np.ndarray, samples: int = 4) -> None:
    """The images of ``dim`` (float32 ``[num_clouds, R*R]``) were made with the parameters the manifest records:
    those of ``samples`` clouds are recomputed from their stored diagrams (a manifest edited and resealed)."""
    entry = pi_entry(manifest, dim)
    params = PIParams.from_dict(dict(entry["params"]))
    for g in sorted({int(round(x)) for x in np.linspace(0, len(images) - 1, samples)}):
        rec = next(r for r in manifest["shards"] if r["start"] <= g < r["start"] + r["clouds"])
        name = rec["diagrams"].get(dim) or rec["diagrams"].get(str(dim))
        diagram = load_diagrams(os.path.join(folder, name))[g - rec["start"]]
        expected = persistence_images([diagram], params).astype(np.float32)[0]
        if expected.shape != images[g].shape or not np.allclose(images[g], expected, rtol=1e-4, atol=1e-6):
            raise DamagedFileError(f"{os.path.join(folder, entry['file'])} was not made with the persistence-image "
                                   f"parameters {manifest_path(folder)} records (the image of cloud {g} recomputed "
                                   f"from its diagram differs: an edited manifest?); rebuild the folder with: "
                                   f"{rebuild_command(folder, manifest)}")


def open_verified(folder: str, dims: Iterable[int], verify: bool = True) -> Dict[str, Any]:
    """`read_manifest`, then the shard records must form one consecutive run and every shard file and the images
    of ``dims`` must match their records (``verify=False``: sizes only; logged) -> the manifest.
    `DamagedFileError` naming the first bad record or file otherwise."""
    manifest, t0 = read_manifest(folder), time.perf_counter()
    start, rebuild, records = 0, rebuild_command(folder, manifest), []
    for i, rec in enumerate(manifest.get("shards") or []):
        expected = {"index": i, "start": start, "pcd": pcd_name(i)}
        found = {k: rec.get(k) for k in expected}
        if found != expected:
            raise DamagedFileError(f"{manifest_path(folder)}: shard record {i} says {found}, expected {expected} "
                                   f"(entries swapped or edited); rebuild it with: {rebuild}")
        start += int(rec.get("clouds", 0))
        files = rec.get("files") or {}
        records += [(name, files.get(name)) for name in [rec["pcd"], *(rec.get("diagrams") or {}).values()]]
    for d in dims:
        entry = pi_entry(manifest, d)
        if entry:
            records.append((entry["file"], {k: entry[k] for k in ("size", "sha256") if k in entry}))
    hashed = verify_files(folder, records, rebuild, check_hash=verify)
    if not verify:
        log.info(f"--no_verify: the SHA-256 of the files of {folder} are not checked (sizes and the manifest's own "
                 f"checksum are)")
    elif hashed:
        log.info(f"verified {folder}: {hashed / 2**20:.1f} MiB in {time.perf_counter() - t0:.2f} s")
    return manifest


def read_pi_params(path: str, dim: int = 0, verify: bool = True, files: bool = True) -> PIParams:
    """`PIParams` of the dim-``dim`` images of a stage-2 folder or its manifest (checked; ``files=False``: the
    manifest's own checksum only), or of a YAML file holding the parameters alone (``PIParams.save_yaml``)."""
    if os.path.isdir(path):
        path = manifest_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"persistence-image parameters {path} not found; pass the stage-2 folder or its "
                                f"manifest.yaml (--pi_params)")
    data = read_sealed(path, "persistence-image parameters")
    if "format" in data or "pi" in data:  # a stage-2 manifest
        folder = os.path.dirname(os.path.abspath(path))
        data = open_verified(folder, [dim], verify) if files else read_manifest(folder)
        entry = pi_entry(data, dim)
        if not entry:
            have = sorted(int(d) for d in (data.get("pi") or {}))
            hint = f"pass --dim {have[0]}" if have else f"the folder holds no images yet: rerun " \
                f"{rebuild_command(folder, data)}"
            raise TopKDError(f"{path} holds no persistence images of dimension {dim} ({hint})")
        data = entry["params"]
    return PIParams.from_dict(data)


def stage2_state(folder: str, identity) -> FolderState:
    """`FolderState` of a stage-2 folder: finished when its manifest is complete with the same identity."""
    if not os.path.isfile(manifest_path(folder)):
        return compare(folder, None, identity, started=False, done=False)
    try:
        manifest = read_manifest(folder)
    except TopKDError as exc:  # failing its own checksum: the run starts afresh (check_resumable)
        return FolderState(folder, "partial", f"holds a manifest that cannot be trusted ({' '.join(str(exc).split())})")
    return compare(folder, stored_identity(manifest), identity, started=True, done=bool(manifest.get("complete")),
                   what="stage-2 run")


def find_stage2(root: str = DEFAULT_ROOT, arch: Optional[str] = None, dataset: Optional[str] = None) -> str:
    """The one complete stage-2 folder under ``root`` (of teacher ``arch`` on ``dataset`` when given)."""
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            manifest = read_manifest(os.path.join(root, name))
        except (OSError, TopKDError):
            continue
        cfg = manifest.get("config") or {}
        if manifest.get("complete") and arch in (None, (cfg.get("source") or {}).get("arch")) \
                and dataset in (None, cfg.get("dataset")):
            found.append(os.path.join(root, name))
    what = " ".join(p for p in (f"of teacher {arch}" if arch else "", f"on {dataset}" if dataset else "") if p)
    what = f" {what}" if what else ""
    if len(found) == 1:
        log.info(f"stage 2: --data_dir not given; took {found[0]} (the one complete stage-2 folder{what} under {root})")
        return found[0]
    if not found:
        raise FileNotFoundError(f"no complete stage-2 folder{what} under {root}; run generate_PCD_PI.py first, or "
                                f"pass --data_dir")
    shown = ", ".join(found[:6]) + (f" (+{len(found) - 6} more)" if len(found) > 6 else "")
    raise TopKDError(f"several complete stage-2 folders{what} under {root}: {shown}; pass --data_dir (or --model_t "
                     f"/ --dataset to choose)")


def check_resumable(folder: str, config: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The manifest of ``folder`` to continue, None when there is none or it fails its own checksum (then the
    folder starts afresh, logged); one of another config -> `TopKDError` (the stage's plan refuses it first)."""
    if not os.path.isfile(manifest_path(folder)):
        return None
    manifest = read_manifest(folder, check=False)
    try:
        check_seal(manifest, manifest_path(folder))
    except DamagedFileError as exc:
        log.warning(f"stage 2: {exc}; starting {folder} afresh (its files are recomputed)")
        return None
    if manifest.get("config") != config:
        raise TopKDError(f"{folder} holds stage-2 data of another configuration; pass a new --out_dir, or "
                         f"--overwrite to replace it")
    return manifest


def check_ripsnet_pi(ckpt: Dict[str, Any], path: str) -> None:
    """A RipsNet checkpoint's persistence-image parameters fit its output width and agree with the sealed stage-2
    manifest it carries; `TopKDError` naming ``path`` otherwise (official checkpoints, without ``pi_params``,
    pass). ``ckpt``: as `topology.ripsnet.load_ripsnet` returns it, or about to be saved (with ``units``)."""
    if ckpt.get("pi_params") is None:
        return
    retrain = "retrain it with train_ripsnet.py on its stage-2 folder"
    try:
        params = PIParams.from_dict(dict(ckpt["pi_params"]))
    except (TypeError, ValueError) as exc:
        raise TopKDError(f"RipsNet checkpoint {path} holds invalid pi_params ({exc}); {retrain}") from None
    out = int((ckpt.get("resolved") or ckpt)["units"][-1])
    if params.num_pixels != out:
        raise TopKDError(f"RipsNet checkpoint {path}: its pi_params resolution {params.resolution[0]}x"
                         f"{params.resolution[1]} does not fit its {out}-pixel output; {retrain}")
    manifest = ckpt.get("manifest")
    if isinstance(manifest, dict) and manifest.get(SEAL_KEY):
        check_seal(manifest, f"{path} (the stage-2 manifest it records)", "train_ripsnet.py on an intact stage-2 "
                   "folder")
        dim = ckpt.get("dim", params.homology_dim if params.homology_dim is not None else 0)
        entry = pi_entry(manifest, dim)
        if entry is not None and PIParams.from_dict(dict(entry["params"])) != params:
            raise TopKDError(f"RipsNet checkpoint {path}: its pi_params differ from those of the stage-2 manifest it "
                             f"records (dim {dim}); {retrain}")
