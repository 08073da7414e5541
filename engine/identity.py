"""A run's identity: everything that decides its result, and the short hash that names its folder.

A run's identity is ``{"options": ..., "inputs": ...}``:

- ``options``: every resolved option of the stage except those in `NOT_RESULT`, a declared list of options
  that never change a result (paths, worker and thread counts, the device, printing, resume bookkeeping,
  speed options that are tested to give the same numbers) and except the weights the chosen method does not
  use (``unused``, e.g. ``-b`` with ``--distill kd``);
- ``inputs``: the SHA-256 of every input file, by the flag that named it (``path_t``, ``path_t2``,
  ``rips_path``, ``pi_params``, ``init_s``, ``data_dir``, ...; a folder with a ``manifest.yaml``, a stage-2
  folder or an image-PI cache ``pi_cache`` / ``pi_cache_test``, by its sealed manifest), and under
  ``data_root`` the fingerprint of the data set read (`datasets.data_fingerprint`); None for an input that
  does not exist yet (a planned run whose previous stage has not run: its hash is then ``pending``).

The folder hash covers the identity without `CONTINUATION` (options a resumed run may change: ``--epochs``
and the precision / compilation switches, see `engine.resume`), so a run trained further stays in its
folder; a fresh run whose identity differs only there is refused with the difference named instead.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from topkd_io import file_sha256

# Options that never change a run's result (declared, not guessed). Input files are represented by their
# SHA-256 under ``inputs``, not by their paths.
NOT_RESULT = frozenset({
    # where things are read and written
    "config", "save_dir", "run_dir", "data_root", "pi_root", "pi_cache", "download", "out_dir", "data_dir",
    "path_t", "path_t2", "rips_path", "pi_params", "init_s", "teacher_trial", "teacher_weights",
    # how fast and how verbosely
    "num_workers", "workers", "threads", "device", "print_freq", "no_progress", "progress", "n_jobs",
    "data_on_device", "channels_last", "deterministic",  # same draws / same numbers (tested), only faster
    "max_shards", "no_verify",  # (--no_verify skips a check, never changes a number)
    # what the topology probe measures after evaluation (never the trained weights: eval mode, fixed items)
    "topo_eval_every", "topo_eval_batches", "topo_eval_batch_size", "topo_eval_dims", "topo_eval_normalize",
    # bookkeeping of this project
    "resume", "resume_override", "resume_history", "plan", "overwrite", "skip_finished", "seed_from",
    "provenance", "identity", "unused_options", "recipe", "loss", "arch", "in_channels", "num_classes",
    "rips_file", "rips_files", "extra",
})
# In the identity, but not in the folder hash: a resumed run may change them (engine.resume's rule).
CONTINUATION = frozenset({"epochs", "amp", "amp_dtype", "compile", "compile_mode"})
PENDING = "pending"
HASH_CHARS = 8

_SHA_CACHE: Dict[Tuple[str, int, int], str] = {}


def input_sha256(path: Optional[str]) -> Optional[str]:
    """SHA-256 of an input file (cached per path, size and modification time); None when it does not exist.

    A folder stands for its ``manifest.yaml`` (a stage-2 folder given as ``--pi_params``)."""
    if not path:
        return None
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.yaml")):
        path = os.path.join(path, "manifest.yaml")
    if not os.path.isfile(path):
        return None
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(path)
    return _SHA_CACHE[key]


def _plain(value: Any) -> Any:
    """JSON-stable values: tuples -> lists, numbers kept, anything else as text."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Identity:
    """``options`` (result-changing options) and ``inputs`` (flag -> SHA-256 or None) of one run."""

    def __init__(self, options: Mapping[str, Any], inputs: Optional[Mapping[str, Optional[str]]] = None):
        self.options = {k: _plain(v) for k, v in sorted(options.items())}
        self.inputs = {k: v for k, v in sorted((inputs or {}).items())}

    @classmethod
    def of(cls, values: Mapping[str, Any], inputs: Optional[Mapping[str, Optional[str]]] = None,
           unused: Iterable[str] = (), not_result: Iterable[str] = ()) -> "Identity":
        """From all of a stage's resolved values: drops `NOT_RESULT`, ``not_result`` and ``unused``."""
        skip = NOT_RESULT | set(unused) | set(not_result)
        return cls({k: v for k, v in values.items() if k not in skip}, inputs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Identity":
        return cls(dict(data.get("options") or {}), dict(data.get("inputs") or {}))

    @property
    def pending(self) -> bool:
        """An input file does not exist yet (a planned run)."""
        return any(v is None for v in self.inputs.values())

    @property
    def hash(self) -> str:
        """Eight hex digits of the identity without `CONTINUATION`; ``pending`` while an input is missing."""
        if self.pending:
            return PENDING
        core = {"options": {k: v for k, v in self.options.items() if k not in CONTINUATION},
                "inputs": self.inputs}
        text = json.dumps(core, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]

    def to_dict(self) -> Dict[str, Any]:
        return {"hash": self.hash, "options": dict(self.options), "inputs": dict(self.inputs)}

    def differences(self, other: "Identity", ignore: Iterable[str] = ()) -> list:
        """``[(what, this value, other value)]`` for every option or input that differs (sorted, inputs first).

        Options missing on one side count as differences (shown as ``(unset)``)."""
        ignore = set(ignore)
        out = []
        for key in sorted(set(self.inputs) | set(other.inputs)):
            a, b = self.inputs.get(key), other.inputs.get(key)
            if a != b:
                out.append((f"input {key} (sha256)", _short(a), _short(b)))
        for key in sorted((set(self.options) | set(other.options)) - ignore):
            a, b = self.options.get(key, _UNSET), other.options.get(key, _UNSET)
            if not _same(a, b):
                out.append((key, a, b))
        return out

    def first_difference(self, other: "Identity", ignore: Iterable[str] = ()) -> Optional[str]:
        """``"kd_T 2.0 -> 6.0"`` (this -> other) for the first difference, with a count of the rest; None if equal."""
        diffs = self.differences(other, ignore)
        if not diffs:
            return None
        key, a, b = diffs[0]
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        return f"{key} {a!r} -> {b!r}{more}".replace("'(unset)'", "(unset)")


_UNSET = "(unset)"


def _short(sha: Optional[str]) -> str:
    return "(missing)" if sha is None else sha[:HASH_CHARS]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def with_hash(name: str, identity: Identity) -> str:
    """A readable run-folder name with the identity hash appended: ``<name>-<8 hex>``."""
    return f"{name}-{identity.hash}"
