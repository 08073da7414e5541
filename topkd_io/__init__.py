"""The bottom floor of topkd: atomic writes, safe reads, manifests and checksums, folder locks, one-line errors.

Every package may import this one; it imports none of them (only the standard library, numpy, torch, PyYAML).
"""
from .atomic import (AtomicNpyWriter, atomic_write, check_output_dir, check_output_file, check_utf8, file_mode,
                     remove_stale_temps, save_npy, save_npz, save_torch, write_text, write_yaml)
from .checksums import check_seal, file_identity, file_sha256, seal, verify_file, verify_file_once
from .errors import DamagedFileError, DivergedError, TopKDError, check_number, describe_os_error, run_cli
from .lock import FolderLock
from .safe_load import UnsafeCheckpointError, load_checkpoint, load_npy, read_error_reason, read_yaml, safe_load

__all__ = [
    "AtomicNpyWriter", "atomic_write", "check_output_dir", "check_output_file", "check_utf8", "file_mode",
    "remove_stale_temps", "save_npy", "save_npz", "save_torch", "write_text", "write_yaml", "check_seal",
    "file_identity", "file_sha256", "seal", "verify_file", "verify_file_once", "DamagedFileError", "DivergedError",
    "TopKDError", "check_number", "describe_os_error", "run_cli", "FolderLock", "UnsafeCheckpointError",
    "load_checkpoint", "load_npy", "read_error_reason", "read_yaml", "safe_load",
]
