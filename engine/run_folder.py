"""A run folder belongs to one run: what a folder holds, and the rule for writing into it.

Every stage that writes a run or output folder (train_teacher, train_student, generate_PCD_PI,
train_ripsnet; generate_image_PI and the quickstart lock theirs) goes through `claim`:

1. the folder is locked (`topkd_io.FolderLock`) for the whole time the stage writes; a second process gets
   one line naming the holder;
2. a stage never writes into the folder of one of its own input files (the student into its teacher's);
3. the folder's state (`FolderState`: ``new``, ``finished``, ``partial``, ``conflict``) is compared with
   the run's `engine.identity.Identity`:

   - ``new`` (absent, empty, or a run that never saved a checkpoint): the run starts;
   - same identity, ``finished``: refused, or with ``--skip_finished`` reported and skipped;
   - same identity, ``partial``: refused, or resumed with ``--skip_finished`` / ``--resume``;
   - another identity (``conflict``): refused with one line naming the first difference;
   - ``--overwrite``: the stage's own files are deleted (the line says which) and the run starts afresh;
   - ``--resume`` continues the folder's run under `engine.resume`'s rule (option changes refused unless
     ``--resume_override``); a changed input file is refused.

Under torchrun only rank 0 claims (the others only train). ``--plan`` prints the state without claiming.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

from topkd_io import (
    FolderLock,
    TopKDError,
    check_output_dir,
    load_checkpoint,
    read_yaml,
)
from topkd_io.lock import LOCK_NAME, busy_text, lock_holder

from .identity import CONTINUATION, Identity

log = logging.getLogger(__name__)

STATUSES = ("new", "finished", "partial", "conflict", "pending", "busy")


@dataclass
class FolderState:
    """What ``folder`` holds for a run of ``identity``. ``status`` is one of `STATUSES`; ``detail`` says why in
    words; ``epoch``: epochs a partial/finished training run has done; ``summary``: its accuracies."""

    folder: str
    status: str
    detail: str = ""
    epoch: Optional[int] = None
    summary: Dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The ``--plan`` answer: ``<status>\\t<folder>\\t<detail>`` (tab-separated, one line)."""
        return f"{self.status}\t{self.folder}\t{' '.join(self.detail.split())}"


def is_rank0() -> bool:
    return int(os.environ.get("RANK", "0") or 0) == 0


def stored_identity(data: Any) -> Optional[Identity]:
    """The identity recorded in a config/manifest mapping (``identity: {options, inputs}``), if any."""
    if isinstance(data, dict) and isinstance(data.get("identity"), dict):
        return Identity.from_dict(data["identity"])
    return None


def _has_content(folder: str, ignore: Sequence[str] = ()) -> bool:
    if not os.path.isdir(folder):
        return False
    skip = {LOCK_NAME, *ignore}
    return any(name not in skip and not name.endswith(".tmp") for name in os.listdir(folder))


def compare(folder: str, stored: Optional[Identity], identity: Identity, *, started: bool, done: bool,
            epoch: Optional[int] = None, summary: Optional[Dict[str, Any]] = None,
            what: str = "run") -> FolderState:
    """The state of ``folder`` given what it records. ``started``: it holds results (a checkpoint, shards);
    ``done``: they are complete for the requested settings; ``stored``: its recorded identity."""
    # under torchrun the lock is rank 0's: the other ranks of the same job must not see it as someone else's
    holder = lock_holder(folder) if os.path.isdir(folder) and is_rank0() else None
    if holder is not None:
        return FolderState(folder, "busy", busy_text(os.path.join(folder, LOCK_NAME), holder))
    if identity.pending:
        missing = ", ".join(k for k, v in identity.inputs.items() if v is None)
        return FolderState(folder, "pending", f"input not there yet: {missing}")
    if not started:
        return FolderState(folder, "new", "nothing of a run in it yet" if os.path.isdir(folder) else "absent")
    if stored is None:
        return FolderState(folder, "conflict", f"holds a {what} without a recorded identity (written by another "
                           f"program or an older version)")
    diff = stored.first_difference(identity, ignore=CONTINUATION)
    if diff:
        return FolderState(folder, "conflict", f"holds a {what} with other settings: {diff}")
    summary = dict(summary or {})
    if done:
        return FolderState(folder, "finished", f"holds a finished {what} of these settings", epoch, summary)
    cont = stored.first_difference(identity)  # only continuation options can differ here
    return FolderState(folder, "partial", f"holds an unfinished {what} of these settings" +
                       (f" (epoch {epoch})" if epoch is not None else "") + (f"; {cont}" if cont else ""),
                       epoch, summary)


# ---------------------------------------------------------------------------------------------- training runs
def training_state(folder: str, identity: Identity, arch: str, epochs: int) -> FolderState:
    """State of a stage-1/4 run folder: ``config.yaml`` (its identity) and ``<arch>_last.pth`` (its progress).

    Finished: the last checkpoint has done ``epochs`` epochs with the same stored ``epochs``; a checkpoint
    with fewer epochs (or a run asked to go further) is partial; one trained further than asked is a conflict.
    """
    last = os.path.join(folder, f"{arch}_last.pth")
    config = os.path.join(folder, "config.yaml")
    started = os.path.isfile(last)
    if not started:
        if _has_content(folder, ignore=("config.yaml", "tb")) and not os.path.isfile(config):
            return compare(folder, None, identity, started=True, done=False, what="run")
        return compare(folder, None, identity, started=False, done=False)
    try:
        stored_cfg = read_yaml(config, "run configuration") if os.path.isfile(config) else None
    except ValueError:
        stored_cfg = None
    ckpt = _checkpoint_scalars(last)
    epoch = int(ckpt.get("epoch") or 0)
    stored_epochs = int((stored_cfg or {}).get("epochs") or epoch)
    summary = {k: ckpt.get(k) for k in ("best_acc", "last_acc", "best_epoch") if ckpt.get(k) is not None}
    if epoch >= int(epochs) and stored_epochs > int(epochs):
        return FolderState(folder, "conflict", f"holds a run trained for {stored_epochs} epochs, not the "
                           f"{epochs} asked for", epoch, summary)
    done = epoch >= int(epochs) and stored_epochs == int(epochs)
    return compare(folder, stored_identity(stored_cfg), identity, started=True, done=done, epoch=epoch,
                   summary=summary)


def _checkpoint_scalars(path: str) -> Dict[str, Any]:
    try:
        ckpt = load_checkpoint(path)
    except (ValueError, OSError):
        return {}
    return {k: v for k, v in ckpt.items() if isinstance(v, (int, float, str)) or v is None}


TRAINING_FILES = ("config.yaml", "summary.yaml", "tb", "*_best.pth", "*_last.pth", "eval_*.yaml")


def remove_files(folder: str, patterns: Sequence[str]) -> List[str]:
    """Delete the entries of ``folder`` matching ``patterns`` (files or folders) -> their names, sorted."""
    removed = []
    for pattern in patterns:
        for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            removed.append(os.path.basename(path))
    return sorted(removed)


def check_not_input_folder(folder: str, inputs: Mapping[str, Optional[str]], flag: str) -> None:
    """ValueError when ``folder`` holds one of the run's input files (or is an input folder itself)."""
    here = os.path.realpath(folder)
    for name, path in inputs.items():
        if not path:
            continue
        real = os.path.realpath(path)
        if real == here or os.path.dirname(real) == here:
            raise ValueError(f"{flag} {folder} holds this run's own input --{name} {path}; a stage never writes "
                             f"where its inputs live (it could replace them): choose another {flag}")


class Claim:
    """The outcome of `claim`: ``skip`` (a finished run of these settings is there), ``resume`` (continue it)."""

    def __init__(self, state: FolderState, skip: bool = False, resume: bool = False):
        self.state, self.skip, self.resume = state, skip, resume


@contextlib.contextmanager
def claim(folder: str, state_of: Callable[[], FolderState], inputs: Mapping[str, Optional[str]], *,
          flag: str, what: str, files: Sequence[str], resume: bool = False, overwrite: bool = False,
          skip_finished: bool = False, self_resuming: bool = False) -> Iterator[Claim]:
    """Hold ``folder`` for one run while the ``with`` block writes it (see the module docstring).

    ``state_of()``: the folder's `FolderState` for this run (read after the lock is taken); ``inputs``:
    flag -> path of the run's input files; ``files``: glob patterns of what the stage writes (removed by
    ``--overwrite``); ``self_resuming``: the stage continues a partial run and re-checks a finished one by
    itself (stage 2), so both proceed.
    Raises ValueError (one line) for a refused folder. Under torchrun the other ranks take the same
    decision from the same (read-only) state, without locking, printing or deleting.
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: continue the run, or start it afresh")
    check_not_input_folder(folder, inputs, flag)
    if not is_rank0():
        state = FolderState(folder, "new") if overwrite else state_of()
        yield decide(state, flag, resume, overwrite, skip_finished, self_resuming, quiet=True)
        return
    os.makedirs(folder, exist_ok=True)
    with FolderLock(folder, flag=flag, what=f"{what} folder"):
        state = state_of()
        if overwrite:
            removed = remove_files(folder, files)
            log.info(f"--overwrite: {folder}: " + (f"removed {', '.join(removed)} ({state.detail})" if removed
                                                     else "nothing to replace"))
        yield decide(state, flag, resume, overwrite, skip_finished, self_resuming)


def decide(state: FolderState, flag: str, resume: bool = False, overwrite: bool = False,
           skip_finished: bool = False, self_resuming: bool = False, quiet: bool = False) -> Claim:
    """What a run does with a folder in ``state`` (the rule of the module docstring) -> `Claim`; ValueError
    (one line) when it must not write there."""
    outcome = Claim(state)
    folder = state.folder
    if state.status == "busy":
        raise TopKDError(f"{flag} {folder} is {state.detail}; wait for it to finish or choose another {flag}")
    if overwrite:
        return outcome
    if state.status == "pending":
        raise FileNotFoundError(f"{flag} {folder}: {state.detail}; run the stage that makes it first")
    if state.status == "conflict" and not resume:
        raise ValueError(f"{flag} {folder} {state.detail}; pass --overwrite to replace it, or choose another "
                         f"{flag} (or leave it out: the run folder is named after the settings)")
    if self_resuming and state.status in ("finished", "partial"):
        return outcome
    if state.status == "finished" and not resume:
        if not skip_finished:
            raise ValueError(f"{flag} {folder} {state.detail}{_acc(state)}; nothing to do: pass --skip_finished "
                             f"to accept it, --resume with a larger --epochs to train it further, or --overwrite "
                             f"to train it again")
        if not quiet:
            log.info(f"skip: {folder} {state.detail}{_acc(state)}")
        outcome.skip = True
    elif state.status == "partial" and not resume:
        if not skip_finished:
            raise ValueError(f"{flag} {folder} {state.detail}; pass --resume to continue it or --overwrite to start "
                             f"afresh")
        if not quiet:
            log.info(f"resume: {folder} {state.detail}")
        outcome.resume = True
    return outcome


def _acc(state: FolderState) -> str:
    s = state.summary
    if s.get("best_acc") is None:
        return ""
    last = f", last {s['last_acc']:.2f}" if isinstance(s.get("last_acc"), (int, float)) else ""
    return f" (best top-1 {float(s['best_acc']):.2f}{last})"


def check_resume_inputs(stored: Optional[Identity], identity: Identity, folder: str) -> None:
    """--resume: the input files must be the ones the run was started with (ValueError naming the first)."""
    if stored is None:
        return
    for key in sorted(set(stored.inputs) | set(identity.inputs)):
        a, b = stored.inputs.get(key), identity.inputs.get(key)
        if a != b:
            raise ValueError(f"--resume: {folder} was trained with another --{key} file (sha256 "
                             f"{(a or '(none)')[:8]} -> {(b or '(none)')[:8]}); resume with the same file, or start "
                             f"a new run (leave out --resume)")


def read_stored_identity(config_path: str) -> Optional[Identity]:
    if not os.path.isfile(config_path):
        return None
    try:
        return stored_identity(read_yaml(config_path, "run configuration"))
    except ValueError:
        return None


def _point_to_other_epochs(folder: str, identity: Identity) -> None:
    """``--resume`` into an empty folder whose name changed with ``--epochs`` (the official teacher naming
    holds the epochs): FileNotFoundError naming the folder of the same settings, if there is one."""
    if identity.pending:
        return
    parent = os.path.dirname(os.path.abspath(folder))
    others = [p for p in glob.glob(os.path.join(glob.escape(parent), f"*-{identity.hash}"))
              if os.path.abspath(p) != os.path.abspath(folder)]
    if len(others) == 1:
        raise FileNotFoundError(f"--resume: {folder} holds no run; the run of these settings with another --epochs "
                                f"is {others[0]}: pass --run_dir {others[0]} to train it further")


def run_training(cfg: Any, identity: Identity, inputs: Mapping[str, Optional[str]], arch: str,
                 build: Callable[[], Any], fit: Callable[[Any], Dict[str, Any]]) -> Dict[str, Any]:
    """Stages 1 and 4: ``--plan``, or claim ``cfg.run_dir`` for this run and train in it.

    The folder's state is checked first without writing (a refused folder costs nothing); then ``build()``
    loads the data and networks (its errors leave no folder behind); then the folder is claimed (locked and
    checked again) and ``fit(built)`` trains inside the claim. -> the training summary;
    ``{"plan": status, ...}`` for ``--plan``; ``{"skipped": True, ...}`` (with the stored accuracies) when
    ``--skip_finished`` finds the run done. Sets ``cfg.identity`` (recorded in config.yaml and every
    checkpoint) and, when an unfinished run of these settings is resumed, ``cfg.resume``."""
    folder = cfg.run_dir

    def state_of() -> FolderState:
        return training_state(folder, identity, arch, int(cfg.epochs))

    if getattr(cfg, "plan", False):
        state = state_of()
        print(state.line(), flush=True)
        return {"plan": state.status, "run_dir": folder, "detail": state.detail}
    options = dict(resume=bool(cfg.resume), overwrite=bool(getattr(cfg, "overwrite", False)),
                   skip_finished=bool(getattr(cfg, "skip_finished", False)))
    check_not_input_folder(folder, inputs, "--run_dir")
    first = state_of()
    if cfg.resume == "auto" and first.status == "new":
        _point_to_other_epochs(folder, identity)
    early = decide(first, "--run_dir", quiet=True, **options)
    if early.skip:
        log.info(f"skip: {folder} {early.state.detail}{_acc(early.state)}")
        return {"skipped": True, "run_dir": folder, **early.state.summary}
    built = build()
    save_dir = getattr(cfg, "save_dir", None)
    if is_rank0():  # a file or a read-only path -> one line naming the flag
        if save_dir and os.path.dirname(os.path.abspath(folder)) == os.path.abspath(save_dir):
            check_output_dir(save_dir, "--save_dir")
        check_output_dir(folder, "--run_dir")
    with claim(folder, state_of, inputs, flag="--run_dir", what="run", files=TRAINING_FILES, **options) as outcome:
        if outcome.skip:
            return {"skipped": True, "run_dir": folder, **outcome.state.summary}
        if outcome.resume:
            cfg.resume = "auto"
        if cfg.resume:
            check_resume_inputs(read_stored_identity(os.path.join(folder, "config.yaml")), identity, folder)
        cfg.identity = identity.to_dict()
        return fit(built)
