"""What a resumed run may change: the stored configuration against the new command line.

Rule (stages 1, 3 and 4): a run resumed from a checkpoint keeps the optimisation it was started with.
A changed optimisation field (learning rate, momentum, weight decay, batch size, schedule, method, loss
weights, seed, data) is refused with a one-line difference unless ``--resume_override`` is given; then
the new values are applied for real from the resumed epoch on and recorded in the configuration's
``resume_history``. ``--epochs`` may grow (or shrink down to the epochs already done) and the change is
logged. Fields that do not change the optimisation (paths, worker count, printing, device, ...) are
free and not compared: the engine's own in ``FREE_FIELDS``, a stage's and a method's (the paths of their
inputs: ``Option(..., free=True)``) given to the trainer as ``free_fields``.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

# Options of `engine.config` a resumed run may change freely.
FREE_FIELDS = frozenset({
    "resume", "resume_override", "resume_history", "num_workers", "print_freq", "device", "threads",
    "save_dir", "run_dir", "config", "data_root", "download", "trial", "amp", "channels_last",
    "deterministic", "epochs", "max_steps", "no_verify",
    "data_on_device", "compile", "compile_mode", "amp_dtype",  # speed options (--compile on CUDA also
    # drops a last partial training batch)
    # bookkeeping, not options: how the run folder is treated, and what the run records about itself
    # (input files are checked by their SHA-256, engine.run_folder.check_resume_inputs)
    "plan", "overwrite", "skip_finished", "teacher_trial", "seed_from", "provenance", "identity",
    "unused_options", "rips_file", "rips_files",
})

Change = Tuple[str, Any, Any]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def config_changes(stored: Dict[str, Any], current: Dict[str, Any],
                   free: Iterable[str] = FREE_FIELDS, only: Optional[Iterable[str]] = None) -> List[Change]:
    """``[(key, stored value, new value)]`` for the compared keys that differ, sorted by key.

    Keys missing on either side (options added or removed since the checkpoint was written) are skipped.
    ``only``: compare just these keys; otherwise every key not in ``free``.
    """
    keys = set(only) if only is not None else (set(stored) | set(current)) - set(free)
    return [(k, stored[k], current[k]) for k in sorted(keys)
            if k in stored and k in current and not _same(stored[k], current[k])]


def format_changes(changes: List[Change]) -> str:
    """``lr 0.05 -> 0.5, momentum 0.9 -> 0.0``."""
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)


def check_resume(path: str, changes: List[Change], override: bool, epoch: int) -> Optional[Dict[str, Any]]:
    """Refuse ``changes`` (ValueError, one line) unless ``override``; -> the history entry to record
    (``{"epoch": first epoch run with the new values, "changes": {key: [old, new]}}``), or None."""
    if not changes:
        return None
    if not override:
        raise ValueError(f"--resume: {path} was trained with other settings ({format_changes(changes)}); "
                         f"resume with the stored values, or add --resume_override to apply the new ones "
                         f"from epoch {epoch}")
    return {"epoch": int(epoch), "changes": {k: [old, new] for k, old, new in changes}}


def check_epochs(path: str, done: int, stored: Any, requested: int) -> Optional[str]:
    """``--epochs`` on resume: fewer than the epochs done -> ValueError; a change -> a log line."""
    if requested < done:
        raise ValueError(f"--resume: {path} has already trained {done} epochs, more than --epochs {requested}; "
                         f"pass --epochs {done} or more (or start a new run folder)")
    if stored is not None and int(stored) != int(requested):
        return f"--epochs changed from {stored} to {requested} at epoch {done + 1}"
    return None
