"""The YAML manifest of a stage-2 folder: what produced it, its shards, its PI parameters, and their checks.

``manifest.yaml`` holds ``config`` (everything that determines the data: source identity, data set,
layer, batch size, passes, dims, shard size, seed ...), ``shards`` (one record per finished shard:
index, clouds, start, files with their size and SHA-256), ``counts``, ``pi`` (per dim: file, size,
SHA-256 and fitted parameters), ``versions``, ``command`` (the command line that wrote it, when known)
and ``checksum``: the SHA-256 of every other field (`topkd_io.checksums.seal`). It is rewritten
atomically after every finished shard, so a shard is finished exactly when it is recorded here.

Readers check the manifest's checksum whenever they read it (a tampered bandwidth, resolution or a pair
of swapped shard entries is refused) and, once per run, every recorded file's size and SHA-256
(`verify_stage2`; ``--no_verify`` keeps the cheap size check only); stage 3 also recomputes a few images from
their diagrams with the recorded parameters (`check_images`), which a manifest resealed with forged parameters
fails. A failure names the file and the command that rebuilds the folder.
"""
from __future__ import annotations

import logging
import os
import shlex
import time
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from engine.record import FolderState, compare, stored_identity, versions
from topkd_io import DamagedFileError, read_yaml, write_yaml
from topkd_io.checksums import (
    SEAL_KEY,
    check_seal,
    pinned_command,
    seal,
    verify_file_once,
)
from topology.point_cloud_pi import PIParams, persistence_images

from . import store

log = logging.getLogger(__name__)

MANIFEST = "manifest.yaml"
FORMAT = "topkd-stage2-v1"


def manifest_path(folder: str) -> str:
    return os.path.join(folder, MANIFEST)


def rebuild_command(folder: str, manifest: Optional[Dict[str, Any]] = None) -> str:
    """The command that rebuilds ``folder``: the recorded one with ``--out_dir`` naming the folder where it
    is now, else a generic hint."""
    command = (manifest or {}).get("command") if isinstance(manifest, dict) else None
    if isinstance(command, str) and command.strip():
        return pinned_command(command, "--out_dir", folder)
    return f"python generate_PCD_PI.py <the same arguments> --out_dir {shlex.quote(str(folder))}"


def _load_yaml(path: str) -> Any:
    return read_yaml(path, "stage-2 file", "rerun generate_PCD_PI.py to regenerate it")


def read_manifest(folder: str, check: bool = True) -> Dict[str, Any]:
    """Parse ``<folder>/manifest.yaml`` and check its own checksum; FileNotFoundError / ValueError /
    `DamagedFileError` with the rebuild command when unusable. ``check=False``: no checksum test (stage 2
    itself, deciding whether to start afresh)."""
    path = manifest_path(folder)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; pass a folder written by generate_PCD_PI.py")
    data = _load_yaml(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a stage-2 manifest (format {FORMAT}); regenerate the folder")
    if check:
        check_seal(data, path, rebuild_command(folder, data))
    return data


def write_manifest(folder: str, manifest: Dict[str, Any]) -> None:
    """Write the manifest with the checksum of its fields (atomically)."""
    write_yaml(manifest_path(folder), seal(manifest))


def new_manifest(config: Dict[str, Any], command: Optional[str] = None) -> Dict[str, Any]:
    out = {"format": FORMAT, "config": config, "shards": [], "counts": {}, "pi": {}, "complete": False,
           "versions": versions()}
    if command:
        out["command"] = command
    return out


# ----------------------------------------------------------------------------- checks
def pi_entry(manifest: Dict[str, Any], dim: int) -> Optional[Dict[str, Any]]:
    """The ``pi`` record of homology dim ``dim`` (YAML may hold the key as int or text), or None."""
    pis = manifest.get("pi") or {}
    return pis.get(dim) or pis.get(str(dim))


def check_structure(folder: str, manifest: Dict[str, Any]) -> None:
    """The shard records form one consecutive run: record i has index i, starts where record i-1 ended,
    names its own files; ValueError naming the first record that does not (a folder edited by hand)."""
    start, rebuild = 0, rebuild_command(folder, manifest)
    for i, rec in enumerate(manifest.get("shards") or []):
        expected = {"index": i, "start": start, "pcd": store.pcd_name(i)}
        found = {k: rec.get(k) for k in expected}
        if found != expected:
            raise DamagedFileError(f"{manifest_path(folder)}: shard record {i} says {found}, expected {expected} "
                                   f"(entries swapped or edited); rebuild it with: {rebuild}")
        start += int(rec.get("clouds", 0))


def recorded_files(manifest: Dict[str, Any], dims: Optional[Iterable[int]] = None) -> List[tuple]:
    """``[(relative name, record)]`` of every shard file and of the image files of ``dims`` (all dims when None)."""
    out = []
    for rec in manifest.get("shards") or []:
        files = rec.get("files") or {}
        for name in [rec["pcd"]] + list((rec.get("diagrams") or {}).values()):
            out.append((name, files.get(name) or {}))
    pis = manifest.get("pi") or {}
    wanted = list(pis) if dims is None else [d for d in pis if int(d) in {int(x) for x in dims}]
    for d in wanted:
        out.append((pis[d]["file"], {k: pis[d][k] for k in ("size", "sha256") if k in pis[d]}))
    return out


def check_images(folder: str, manifest: Dict[str, Any], dim: int, images: np.ndarray, samples: int = 4) -> None:
    """The images of dim ``dim`` (``images``: float32 ``[num_clouds, R*R]``, as stored) were made with the
    persistence-image parameters the manifest records: those of ``samples`` clouds spread over the folder are
    recomputed from their stored diagrams and compared. `DamagedFileError` naming the file and the rebuild
    command otherwise (a manifest edited and resealed: its checksum alone cannot tell)."""
    entry = pi_entry(manifest, dim)
    params = PIParams.from_dict(dict(entry["params"]))
    path, rebuild = os.path.join(folder, entry["file"]), rebuild_command(folder, manifest)
    for g in sorted({int(round(x)) for x in np.linspace(0, len(images) - 1, samples)}):
        rec = next(r for r in manifest["shards"] if r["start"] <= g < r["start"] + r["clouds"])
        name = rec["diagrams"].get(dim) or rec["diagrams"].get(str(dim))
        diagram = store.load_diagrams(os.path.join(folder, name))[g - rec["start"]]
        expected = persistence_images([diagram], params).astype(np.float32)[0]
        if expected.shape != images[g].shape or not np.allclose(images[g], expected, rtol=1e-4, atol=1e-6):
            raise DamagedFileError(f"{path} was not made with the persistence-image parameters "
                                   f"{manifest_path(folder)} records (the image of cloud {g} recomputed from its "
                                   f"diagram differs: an edited manifest?); rebuild the folder with: {rebuild}")


def verify_stage2(folder: str, manifest: Dict[str, Any], dims: Optional[Iterable[int]] = None,
                  check_hash: bool = True) -> int:
    """Check a finished stage-2 folder against its manifest: structure, and every recorded file's size
    and (unless ``check_hash`` is False) SHA-256, each file hashed at most once per process.
    -> bytes hashed now. Raises `DamagedFileError` naming the first bad file and the rebuild command."""
    check_structure(folder, manifest)
    rebuild = rebuild_command(folder, manifest)
    hashed = 0
    for name, record in recorded_files(manifest, dims):
        if not record:
            raise DamagedFileError(f"{os.path.join(folder, name)} has no recorded size and SHA-256 (written by an "
                                   f"older version); rebuild the folder with: {rebuild}")
        path = os.path.join(folder, name)
        if verify_file_once(path, record, rebuild, check_hash=check_hash):
            hashed += int(record.get("size", 0))
    return hashed


def open_verified(folder: str, dims: Optional[Iterable[int]] = None, verify: bool = True,
                  log=print) -> Dict[str, Any]:
    """`read_manifest` + `verify_stage2` with one log line: what was checked and how long it took, or that
    ``--no_verify`` skipped the checksums (sizes are still checked)."""
    manifest = read_manifest(folder)
    t0 = time.perf_counter()
    hashed = verify_stage2(folder, manifest, dims, check_hash=verify)
    if not verify:
        log(f"--no_verify: the SHA-256 of the files of {folder} are not checked (sizes and the manifest's own "
            f"checksum are)")
    elif hashed:
        log(f"verified {folder}: {len(recorded_files(manifest, dims))} files, {hashed / 2**20:.1f} MiB in "
            f"{time.perf_counter() - t0:.2f} s")
    return manifest


def read_pi_params(path: str, dim: int = 0, verify: bool = True, files: bool = True):
    """``PIParams`` of the dimension-``dim`` images from a stage-2 folder or its ``manifest.yaml`` (checked:
    the manifest's checksum and, with ``files``, its files' sizes and, unless ``verify`` is False, SHA-256;
    ``files=False`` for readers that use the parameters alone, e.g. figures), or from a YAML file holding
    the parameters alone (``PIParams.save_yaml``)."""
    if os.path.isdir(path):
        path = manifest_path(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"persistence-image parameters {path} not found; pass the stage-2 folder or "
                                f"its manifest.yaml (--pi_params)")
    data = _load_yaml(path) or {}
    if isinstance(data, dict) and data.get("format") == FORMAT:  # a stage-2 manifest
        folder = os.path.dirname(os.path.abspath(path))
        data = open_verified(folder, dims=[dim], verify=verify) if files else read_manifest(folder)
        entry = pi_entry(data, dim)
        if not entry:
            have = sorted(int(d) for d in (data.get("pi") or {}))
            hint = (f"pass --dim {have[0]}" if have else f"the folder holds no images yet: rerun "
                    f"{rebuild_command(folder, data)}")
            raise ValueError(f"{path} holds no persistence images of dimension {dim} ({hint})")
        data = entry["params"]
    elif isinstance(data, dict) and isinstance(data.get("pi"), dict):
        raise ValueError(f"{path} looks like a stage-2 manifest but has no format {FORMAT!r}; regenerate it")
    return PIParams.from_dict(data)


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
    """`engine.record.FolderState` of a stage-2 folder for a run of ``identity``: finished when its manifest
    is complete with the same recorded identity. A manifest without a recorded identity (an older folder) is
    left to `check_resumable`, which compares its configuration when the run starts."""
    path = manifest_path(folder)
    if not os.path.isfile(path):
        return compare(folder, None, identity, started=False, done=False)
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:  # check_resumable decides (a manifest failing its own checksum: start afresh)
        return FolderState(folder, "partial", f"holds a manifest that cannot be trusted ({' '.join(str(exc).split())})")
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
        log.info(f"stage 2: --data_dir not given; took {found[0]} (the one complete stage-2 folder {what} under "
                 f"{root})".replace("  ", " "))
        return found[0]
    if not found:
        raise FileNotFoundError(f"no complete stage-2 folder {what} under {root}; run generate_PCD_PI.py first, or pass "
                                f"--data_dir".replace("  ", " "))
    shown = ", ".join(found[:6]) + (f" (+{len(found) - 6} more)" if len(found) > 6 else "")
    raise ValueError(f"several complete stage-2 folders {what} under {root}: {shown}; pass --data_dir (or --model_t "
                     f"/ --dataset to choose)".replace("  ", " "))


def check_resumable(folder: str, config: Dict[str, Any], log=print) -> Optional[Dict[str, Any]]:
    """The existing manifest of ``folder`` if its config equals ``config``; None when there is none, or when
    it fails its own checksum (then nothing it records can be trusted: the folder starts afresh, logged).

    Raises ValueError naming what differs when the folder was produced by another teacher/config.
    """
    if not os.path.isfile(manifest_path(folder)):
        return None
    manifest = read_manifest(folder, check=False)
    try:
        check_seal(manifest, manifest_path(folder))
    except DamagedFileError as exc:
        log(f"stage 2: {exc}; starting {folder} afresh (its files are recomputed)")
        return None
    diffs = config_differences(manifest.get("config", {}), config)
    if diffs:
        shown = "; ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")
        raise ValueError(f"{folder} holds stage-2 data from another teacher/config ({shown}); "
                         "pass a new --out_dir, or --overwrite to replace it")
    return manifest


# ----------------------------------------------------------------------------- RipsNet checkpoints
def check_ripsnet_pi(ckpt: Dict[str, Any], path: str) -> None:
    """A RipsNet checkpoint's persistence-image parameters agree with themselves and with the network:
    valid `PIParams`, resolution R0 x R1 = the output width and equal to the checkpoint's ``resolution``,
    and (when the checkpoint carries a checksummed stage-2 manifest) that manifest untampered and holding
    the same parameters for its dim. ValueError naming ``path`` otherwise; official checkpoints (no
    ``pi_params``) pass. Called before stage 3 saves a RipsNet and when stage 4 loads one."""
    raw = ckpt.get("pi_params")
    if raw is None:
        return
    retrain = "retrain it with train_ripsnet.py on its stage-2 folder"
    try:
        params = PIParams.from_dict(dict(raw))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"RipsNet checkpoint {path} holds invalid pi_params ({exc}); {retrain}") from None
    units = ckpt.get("units") or ckpt.get("units_list")
    out = int(units[-1]) if units else None
    state = ckpt.get("model")
    if out is None and isinstance(state, dict) and "layer7.linear.weight" in state:
        out = int(state["layer7.linear.weight"].shape[0])
    r0, r1 = params.resolution
    if out is not None and r0 * r1 != out:
        raise ValueError(f"RipsNet checkpoint {path}: its pi_params resolution {r0}x{r1} does not fit its "
                         f"{out}-pixel output; {retrain}")
    stored = ckpt.get("resolution")
    if stored is not None and (int(stored), int(stored)) != (r0, r1):
        raise ValueError(f"RipsNet checkpoint {path}: its pi_params resolution {r0}x{r1} disagrees with its "
                         f"resolution {stored}; {retrain}")
    manifest = ckpt.get("manifest")
    if isinstance(manifest, dict) and manifest.get(SEAL_KEY):
        check_seal(manifest, f"{path} (the stage-2 manifest it records)", "train_ripsnet.py on an intact stage-2 "
                   "folder")
        dim = ckpt.get("dim", params.homology_dim if params.homology_dim is not None else 0)
        entry = pi_entry(manifest, dim)
        if entry is not None and PIParams.from_dict(dict(entry["params"])) != params:
            raise ValueError(f"RipsNet checkpoint {path}: its pi_params differ from those of the stage-2 manifest "
                             f"it records (dim {dim}); {retrain}")
