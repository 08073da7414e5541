"""The bottom floor of topkd: atomic writes and folder locks (`write`), safe reads and checksums (`read`), one-line
errors (`errors`). Every package may import this one; it imports none of them."""
from .errors import DamagedFileError, DivergedError, TopKDError, check_number, run_cli
from .read import (SEAL_KEY, UnsafeCheckpointError, check_seal, file_identity, file_record, file_sha256,
                   load_checkpoint, load_npy, pinned_command, read_sealed, read_yaml, safe_load,
                   seal, verify_file, verify_file_once, verify_files, write_sealed)
from .write import (LOCK_NAME, AtomicNpyWriter, FolderLock, atomic_write, busy_text, check_output_dir,
                    check_output_file, check_utf8, lock_holder, remove_stale_temps, save_npy, save_npz,
                    save_torch, write_text, write_yaml)
