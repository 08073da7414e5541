"""The bottom floor of topkd: writing, reading and checking files, and one-line errors.

Every package may import this one; it imports none of them (only the standard library, numpy, torch and
PyYAML). Modules:

- `atomic`: `atomic_write` (the one atomic writer: a temporary file beside the target, fsync, rename, fsync
  of the folder) and its wrappers for text, YAML, numpy and torch files; cleanup of temporaries whose
  writer is gone; `AtomicNpyWriter` (a ``.npy`` streamed in row blocks); `check_output_dir` /
  `check_output_file` / `check_utf8`.
- `safe_load`: `safe_load` (``torch.load(weights_only=True)`` with a small numpy allowlist),
  `load_checkpoint`, `load_npy` (read-only memory maps of ``.npy`` files, short files refused), `read_yaml`
  (duplicate keys, aliases, nesting deeper than 50 and non-UTF-8 text refused, naming the file).
- `checksums`: `file_sha256`, `file_identity`, `verify_file` / `verify_file_once` (size and SHA-256 against a
  record), `seal` / `check_seal` (a manifest's own fields under one checksum).
- `lock`: `FolderLock`, one process writing a folder at a time.
- `errors`: `TopKDError`, `DamagedFileError`, `run_cli` (user errors become one ``error:`` line),
  `check_number` (a finite number within bounds, or one line naming the flag).
"""
from .atomic import (AtomicNpyWriter, atomic_write, check_output_dir, check_output_file, check_utf8, file_mode,
                     remove_stale_temps, save_npy, save_npz, save_torch, write_text, write_yaml)
from .checksums import check_seal, file_identity, file_sha256, seal, verify_file, verify_file_once
from .errors import DamagedFileError, TopKDError, check_number, describe_os_error, run_cli
from .lock import FolderLock
from .safe_load import UnsafeCheckpointError, load_checkpoint, load_npy, read_error_reason, read_yaml, safe_load

__all__ = [
    "AtomicNpyWriter", "atomic_write", "check_output_dir", "check_output_file", "check_utf8", "file_mode",
    "remove_stale_temps", "save_npy", "save_npz", "save_torch", "write_text", "write_yaml", "check_seal",
    "file_identity", "file_sha256", "seal", "verify_file", "verify_file_once", "DamagedFileError", "TopKDError",
    "check_number", "describe_os_error", "run_cli", "FolderLock", "UnsafeCheckpointError", "load_checkpoint",
    "load_npy", "read_error_reason", "read_yaml", "safe_load",
]
