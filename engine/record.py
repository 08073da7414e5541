"""A run's record: its identity, its provenance, and the rule for its folder (new, finished, resumed, refused).

**Identity.** ``{"options": ..., "inputs": ...}``: every option declared to change the result (`option`, or
``distiller.options.Option(result=...)``) that the run uses, the facts given beside them (the number of
processes), and the SHA-256 of every input file by its flag (a folder with a ``manifest.yaml`` by that
manifest; the data set read by its fingerprint, ``datasets.data_fingerprint``; None for an input that does
not exist yet: the identity is then ``pending``). The folder name ends in 8 hex digits of it, without the
options declared ``resume="continue"`` (``--epochs``, precision, compilation), so a run trained further keeps
its folder. A resumed run may change those and the ones declared ``resume="free"``; a change of any other
option is refused unless ``--resume_override`` (`check_resume`); a changed input file always is.

**Folder.** `plan_run` compares what the folder holds (`FolderState`) with the run: ``new`` (nothing of a run
in it) -> train; same identity ``finished`` -> refused, or skipped with ``--skip_finished``; same identity
``partial`` -> refused, or resumed with ``--skip_finished`` / ``--resume``; another identity (``conflict``) ->
refused naming the first difference; ``pending`` / ``busy`` -> refused; ``--overwrite`` deletes the stage's
files (named) and starts afresh; ``--plan`` prints the state and stops. A stage never writes into the folder
of one of its inputs. `Run.claim` holds the folder's lock (``topkd_io.FolderLock``) while the stage writes
it; under torchrun only rank 0 locks, deletes and prints.

**Provenance.** `provenance`: commit and dirty state, library versions, date, host, device, command line and
every input file's path and SHA-256; stored in config.yaml, every checkpoint and the stage-2 manifest.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import glob
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from topkd_io import FolderLock, TopKDError, check_output_dir, file_sha256, load_checkpoint, read_yaml
from topkd_io.lock import LOCK_NAME, busy_text, lock_holder

from .distributed import process

log = logging.getLogger(__name__)

RESUME = ("fixed", "free", "continue")
HASH_CHARS = 8


# ----------------------------------------------------------------------------------------------- options
def option(group, *flags: str, result: bool = True, resume: str = "fixed", **kwargs):
    """``group.add_argument(*flags, **kwargs)`` that also declares whether the option changes the run's result
    (``result``: it is then in the identity) and whether a resumed run may change it (``resume``: ``fixed``,
    ``free``, or ``continue``: free, and left out of the folder name). Undeclared options change the result."""
    assert resume in RESUME, resume
    action = group.add_argument(*flags, **kwargs)
    action.result, action.resume = result, resume
    return action


def declarations(parser) -> Dict[str, Tuple[bool, str]]:
    """``dest -> (result, resume)`` of every option of ``parser`` (argparse keeps its actions in ``_actions``)."""
    return {a.dest: (getattr(a, "result", True), getattr(a, "resume", "fixed"))
            for a in parser._actions if a.option_strings and a.dest != "help"}


# ---------------------------------------------------------------------------------------------- identity
_SHA_CACHE: Dict[Tuple[str, int, int], str] = {}


def input_sha256(path: Optional[str]) -> Optional[str]:
    """SHA-256 of an input file (a folder: its ``manifest.yaml``), cached by path, size and mtime; None if absent."""
    if not path:
        return None
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(os.path.join(path, "manifest.yaml")):
        path = os.path.join(path, "manifest.yaml")
    if not os.path.isfile(path):
        return None
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = file_sha256(path)
    return _SHA_CACHE[key]


def plain(value: Any) -> Any:
    """A value as plain YAML/JSON types (tuples -> lists, str-keyed dicts, scalars; anything else as text)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


class Identity:
    """``options`` (name -> value) and ``inputs`` (flag -> SHA-256 or None) of one run. ``free``: options a
    resumed run may change; ``loose``: those of them left out of the `hash` (both from the declarations)."""

    def __init__(self, options: Mapping[str, Any], inputs: Optional[Mapping[str, Optional[str]]] = None,
                 free: Iterable[str] = (), loose: Iterable[str] = ()):
        self.options = {k: plain(v) for k, v in sorted(options.items())}
        self.inputs = dict(sorted((inputs or {}).items()))
        self.free, self.loose = frozenset(free) | frozenset(loose), frozenset(loose)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Identity":
        return cls(dict(data.get("options") or {}), dict(data.get("inputs") or {}))

    @property
    def pending(self) -> bool:
        """An input file does not exist yet (a planned run)."""
        return any(v is None for v in self.inputs.values())

    @property
    def hash(self) -> str:
        """Eight hex digits of the identity without the ``loose`` options; ``pending`` while an input is missing."""
        if self.pending:
            return "pending"
        core = {"options": {k: v for k, v in self.options.items() if k not in self.loose}, "inputs": self.inputs}
        return hashlib.sha256(json.dumps(core, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:HASH_CHARS]

    def to_dict(self) -> Dict[str, Any]:
        return {"hash": self.hash, "options": dict(self.options), "inputs": dict(self.inputs)}

    def first_difference(self, other: "Identity", ignore: Iterable[str] = ()) -> Optional[str]:
        """``"kd_T 2.0 -> 6.0"`` (self -> other) for the first difference (inputs first), with a count of the
        rest; None if equal. An option set on one side only shows as ``(unset)``."""
        diffs = [(f"input {k} (sha256)", _short(self.inputs.get(k)), _short(other.inputs.get(k)))
                 for k in sorted(set(self.inputs) | set(other.inputs)) if self.inputs.get(k) != other.inputs.get(k)]
        diffs += [(k, self.options.get(k, "(unset)"), other.options.get(k, "(unset)"))
                  for k in sorted((set(self.options) | set(other.options)) - set(ignore))
                  if not _same(self.options.get(k, "(unset)"), other.options.get(k, "(unset)"))]
        if not diffs:
            return None
        key, a, b = diffs[0]
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        return f"{key} {a!r} -> {b!r}{more}".replace("'(unset)'", "(unset)")


def _short(sha: Optional[str]) -> str:
    return "(missing)" if sha is None else sha[:HASH_CHARS]


def identity_of(parser, values: Mapping[str, Any], inputs: Mapping[str, Optional[str]], unused: Iterable[str] = (),
                **facts: Any) -> Identity:
    """The identity of a run whose options ``parser`` declares: the result options among ``values`` (less the
    ``unused`` ones, which no term of the chosen method reads), the ``facts`` (e.g. ``world_size``), and
    ``inputs`` (flag -> SHA-256, `input_sha256`)."""
    declared = declarations(parser)
    options = {k: v for k, v in values.items() if declared.get(k, (False,))[0] and k not in set(unused)}
    return Identity({**options, **facts}, inputs, free=[k for k, (_, r) in declared.items() if r == "free"],
                    loose=[k for k, (_, r) in declared.items() if r == "continue"])


def file_hashes(paths: Mapping[str, Optional[str]]) -> Dict[str, Optional[str]]:
    """flag -> `input_sha256` of the input files that are set."""
    return {k: input_sha256(v) for k, v in paths.items() if v}


def stored_identity(data: Any) -> Optional[Identity]:
    """The identity a config/manifest mapping records (``identity: {options, inputs}``), if any."""
    if isinstance(data, dict) and isinstance(data.get("identity"), dict):
        return Identity.from_dict(data["identity"])
    return None


def read_stored_identity(config_path: str) -> Optional[Identity]:
    try:
        return stored_identity(read_yaml(config_path, "run configuration")) if os.path.isfile(config_path) else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------- resume
Change = Tuple[str, Any, Any]


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any], only: Iterable[str]) -> List[Change]:
    """``[(key, stored, new)]`` for the keys in ``only`` that both sides hold and that differ, sorted by key."""
    return [(k, stored[k], current[k]) for k in sorted(set(only))
            if k in stored and k in current and not _same(stored[k], current[k])]


def format_changes(changes: List[Change]) -> str:
    """``lr 0.05 -> 0.5, momentum 0.9 -> 0.0``."""
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)


def resume_changes(stored: Mapping[str, Any], identity: Optional[Identity]) -> List[Change]:
    """The options of ``identity`` a resumed run may not change that differ from the stored run configuration's
    (its recorded identity's options; a configuration without one: its own values); none without an identity."""
    if identity is None:
        return []
    old = (stored.get("identity") or {}).get("options") or stored
    return config_changes(old, identity.options, only=set(identity.options) - identity.free)


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


def check_resume_inputs(stored: Optional[Identity], identity: Identity, folder: str) -> None:
    """--resume: the input files must be the ones the run was started with (ValueError naming the first)."""
    for key in sorted(set(stored.inputs) | set(identity.inputs)) if stored is not None else ():
        a, b = stored.inputs.get(key), identity.inputs.get(key)
        if a != b:
            raise ValueError(f"--resume: {folder} was trained with another --{key} file (sha256 {(a or '(none)')[:8]} "
                             f"-> {(b or '(none)')[:8]}); resume with the same file, or start a new run (leave out "
                             f"--resume)")


# ------------------------------------------------------------------------------------------- provenance
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GIT: Dict[str, Dict[str, Any]] = {}


def git_state(root: str = PROJECT) -> Dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding ``root`` (None outside one;
    cached)."""
    root = os.fspath(root)
    if root not in _GIT:
        state = {"commit": None, "dirty": None}
        try:
            head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            if head.returncode == 0:
                state["commit"] = head.stdout.strip()
                status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=30)
                state["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            pass  # no git: recorded as unknown
        _GIT[root] = state
    return dict(_GIT[root])


def versions() -> Dict[str, Optional[str]]:
    """Versions of python and the libraries that decide the numbers (None for one that is not installed)."""
    out: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "gudhi", "numpy"):
        try:
            out[name] = str(getattr(__import__(name), "__version__", "?"))
        except ImportError:
            out[name] = None
    return out


def describe_device(device: Any) -> str:
    """``cpu``, or ``cuda:0 <GPU name>``; with ``x<N> processes`` under torchrun."""
    text = str(device)
    if text.startswith("cuda"):
        import torch

        index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
        text = f"cuda:{index} {torch.cuda.get_device_name(index)}"
    world = process().world_size
    return text + (f" x{world} processes" if world > 1 else "")


def provenance(inputs: Optional[Mapping[str, Optional[str]]] = None, device: Any = "cpu", **extra: Any) -> Dict[str, Any]:
    """Where a result comes from (module docstring); ``inputs``: flag -> path; ``extra`` entries are added."""
    files = {k: os.path.abspath(os.fspath(v)) for k, v in (inputs or {}).items() if v}
    return {**git_state(), "versions": versions(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "host": socket.gethostname(),
            "device": describe_device(device), "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
            "inputs": {k: {"path": p, "sha256": input_sha256(p)} for k, p in files.items()}, **extra}


def header_line(record: Mapping[str, Any]) -> str:
    """One line for the run header: commit, date, device."""
    commit = record.get("commit")
    code = "no git checkout" if commit is None else f"commit {commit[:10]}" + (" (dirty)" if record.get("dirty") else "")
    return f"provenance: {code}, {record.get('date')}, {record.get('device')}, torch {record['versions'].get('torch')}"


def recorded_accuracy(ckpt: Mapping[str, Any]) -> Optional[float]:
    """The test top-1 a checkpoint records: ``best_acc`` (ours, official TopKD), else ``accuracy``
    (RepDistiller's per-epoch files), else None (torchvision or TGD files record none)."""
    for key in ("best_acc", "accuracy"):
        try:
            if ckpt.get(key) is not None:
                return round(float(ckpt[key]), 4)
        except (TypeError, ValueError):
            continue
    return None


# ----------------------------------------------------------------------------------------------- folders
@dataclass
class FolderState:
    """What ``folder`` holds for a run: ``status`` (new, finished, partial, conflict, pending, busy), ``detail``
    (why, in words), ``epoch`` (epochs a training run has done) and ``summary`` (its accuracies)."""

    folder: str
    status: str
    detail: str = ""
    epoch: Optional[int] = None
    summary: Dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The ``--plan`` answer: ``<status>\\t<folder>\\t<detail>`` (one line)."""
        return f"{self.status}\t{self.folder}\t{' '.join(self.detail.split())}"


def compare(folder: str, stored: Optional[Identity], identity: Identity, *, started: bool, done: bool,
            epoch: Optional[int] = None, summary: Optional[Dict[str, Any]] = None, what: str = "run") -> FolderState:
    """The state of ``folder`` for a run of ``identity``. ``started``: it holds results (a checkpoint, shards);
    ``done``: they are complete for these settings; ``stored``: the identity it records."""
    holder = lock_holder(folder) if os.path.isdir(folder) and process().rank == 0 else None  # rank 0's lock
    if holder is not None:
        return FolderState(folder, "busy", busy_text(os.path.join(folder, LOCK_NAME), holder))
    if identity.pending:
        return FolderState(folder, "pending", "input not there yet: " + ", ".join(
            k for k, v in identity.inputs.items() if v is None))
    if not started:
        return FolderState(folder, "new", "nothing of a run in it yet" if os.path.isdir(folder) else "absent")
    if stored is None:
        return FolderState(folder, "conflict", f"holds a {what} without a recorded identity (written by another "
                           f"program or an older version)")
    diff = stored.first_difference(identity, ignore=identity.loose)
    if diff:
        return FolderState(folder, "conflict", f"holds a {what} with other settings: {diff}")
    if done:
        return FolderState(folder, "finished", f"holds a finished {what} of these settings", epoch, dict(summary or {}))
    more = stored.first_difference(identity)  # only the options outside the hash can differ here
    return FolderState(folder, "partial", f"holds an unfinished {what} of these settings" +
                       (f" (epoch {epoch})" if epoch is not None else "") + (f"; {more}" if more else ""),
                       epoch, dict(summary or {}))


def training_state(folder: str, identity: Identity, arch: str, epochs: int) -> FolderState:
    """State of a stage-1/4 run folder: ``config.yaml`` (its identity) and ``<arch>_last.pth`` (its progress).
    Finished: the last checkpoint has done ``epochs`` epochs of a run asked for ``epochs``; fewer (or a run asked
    to go further) is partial; a run trained further than asked is a conflict."""
    last, config = os.path.join(folder, f"{arch}_last.pth"), os.path.join(folder, "config.yaml")
    if not os.path.isfile(last):
        foreign = os.path.isdir(folder) and not os.path.isfile(config) and any(
            n not in (LOCK_NAME, "config.yaml", "tb") and not n.endswith(".tmp") for n in os.listdir(folder))
        return compare(folder, None, identity, started=foreign, done=False)
    try:
        stored_cfg = read_yaml(config, "run configuration") if os.path.isfile(config) else None
    except ValueError:
        stored_cfg = None
    try:
        ckpt = load_checkpoint(last)
    except (ValueError, OSError):
        ckpt = {}
    epoch = int(ckpt.get("epoch") or 0)
    stored_epochs = int((stored_cfg or {}).get("epochs") or epoch)
    summary = {k: ckpt[k] for k in ("best_acc", "last_acc", "best_epoch") if isinstance(ckpt.get(k), (int, float))}
    if epoch >= int(epochs) and stored_epochs > int(epochs):
        return FolderState(folder, "conflict", f"holds a run trained for {stored_epochs} epochs, not the {epochs} "
                           f"asked for", epoch, summary)
    return compare(folder, stored_identity(stored_cfg), identity, started=True, summary=summary, epoch=epoch,
                   done=epoch >= int(epochs) and stored_epochs == int(epochs))


TRAINING_FILES = ("config.yaml", "summary.yaml", "tb", "*_best.pth", "*_last.pth", "eval_*.yaml")


def remove_files(folder: str, patterns: Sequence[str]) -> List[str]:
    """Delete the entries of ``folder`` matching ``patterns`` (files or folders) -> their names, sorted."""
    removed = []
    for pattern in patterns:
        for path in glob.glob(os.path.join(glob.escape(folder), pattern)):
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
            removed.append(os.path.basename(path))
    return sorted(removed)


def check_not_input_folder(folder: str, inputs: Mapping[str, Optional[str]], flag: str) -> None:
    """ValueError when ``folder`` holds one of the run's input files (or is an input folder itself)."""
    here = os.path.realpath(folder)
    for name, path in inputs.items():
        if path and here in (os.path.realpath(path), os.path.dirname(os.path.realpath(path))):
            raise ValueError(f"{flag} {folder} holds this run's own input --{name} {path}; a stage never writes "
                             f"where its inputs live (it could replace them): choose another {flag}")


def _acc(state: FolderState) -> str:
    s = state.summary
    if s.get("best_acc") is None:
        return ""
    last = f", last {s['last_acc']:.2f}" if isinstance(s.get("last_acc"), (int, float)) else ""
    return f" (best top-1 {float(s['best_acc']):.2f}{last})"


@dataclass
class Run:
    """A stage's run folder and what `plan_run` decided for it: ``outcome`` (the stage's answer) when the run
    stops here (``--plan``, a finished run skipped); else train in ``folder`` inside `claim`, continuing the
    run there when ``resume`` is set (a checkpoint, or ``auto``: the folder's last)."""

    folder: str
    identity: Identity
    state: Callable[[], FolderState]  # the folder's state for this run (read again under the lock)
    flag: str = "--run_dir"
    what: str = "run"
    files: Sequence[str] = TRAINING_FILES  # what the stage writes there (deleted by --overwrite)
    rule: Dict[str, bool] = field(default_factory=dict)  # resume, overwrite, skip_finished, self_resuming
    status: str = ""  # the folder's status when the run was planned
    parent: Optional[Tuple[str, str]] = None  # (folder, flag) that holds the run folder
    resume: Optional[str] = None
    outcome: Optional[Dict[str, Any]] = None

    @property
    def stop(self) -> bool:
        return self.outcome is not None

    def decide(self, state: FolderState) -> Tuple[bool, bool]:
        """What the run does with a folder in ``state`` -> ``(skip, resume)``; a one-line error where it must not
        write there."""
        flag, folder, rule = self.flag, state.folder, self.rule
        if state.status == "busy":
            raise TopKDError(f"{flag} {folder} is {state.detail}; wait for it to finish or choose another {flag}")
        if rule["overwrite"]:
            return False, False
        if state.status == "pending":
            raise FileNotFoundError(f"{flag} {folder}: {state.detail}; run the stage that makes it first")
        if state.status == "conflict" and not rule["resume"]:
            raise ValueError(f"{flag} {folder} {state.detail}; pass --overwrite to replace it, or choose another "
                             f"{flag} (or leave it out: the run folder is named after the settings)")
        if rule["resume"] or rule["self_resuming"] or state.status not in ("finished", "partial"):
            return False, False
        if not rule["skip_finished"]:
            raise ValueError(f"{flag} {folder} {state.detail}{_acc(state)}; nothing to do: pass --skip_finished to "
                             f"accept it, --resume with a larger --epochs to train it further, or --overwrite to "
                             f"train it again" if state.status == "finished" else
                             f"{flag} {folder} {state.detail}; pass --resume to continue it or --overwrite to start "
                             f"afresh")
        log.info(f"{'skip' if state.status == 'finished' else 'resume'}: {folder} {state.detail}{_acc(state)}")
        return state.status == "finished", state.status == "partial"

    def writable(self, create: bool = True) -> None:
        """The run folder and the parent holding it as writable folders, made where missing; a file or a
        read-only path -> one line naming its flag. ``create=False``: only those that exist (nothing written)."""
        for path, flag in ([self.parent] if self.parent else []) + [(self.folder, self.flag)]:
            if create or os.path.exists(path):
                check_output_dir(path, flag)

    @contextlib.contextmanager
    def claim(self):
        """Hold the folder while the ``with`` block writes it: its lock (rank 0 only: the other processes of a
        torchrun job write nothing), then ``--overwrite``'s deletions; a folder another process changed since
        the plan is refused in one line."""
        if process().rank != 0:
            yield self
            return
        self.writable()
        with FolderLock(self.folder, flag=self.flag, what=f"{self.what} folder"):
            state = self.state()
            if self.rule["overwrite"]:
                removed = remove_files(self.folder, self.files)
                log.info(f"--overwrite: {self.folder}: " + (f"removed {', '.join(removed)} ({state.detail})"
                                                             if removed else "nothing to replace"))
            elif state.status != self.status:
                raise ValueError(f"{self.flag} {self.folder} changed while this run was being prepared: it now "
                                 f"{state.detail}; run the command again")
            yield self


def plan_run(folder: str, identity: Identity, state: Callable[[], FolderState], inputs: Mapping[str, Optional[str]],
             *, plan: bool = False, resume: Any = None, overwrite: bool = False, skip_finished: bool = False,
             self_resuming: bool = False, parent: Optional[Tuple[str, str]] = None, **where: Any) -> Run:
    """The run folder of a run and what to do with it (module docstring) -> `Run`; a one-line error where the
    run must not write there. Nothing is written. ``state()``: the folder's `FolderState` for this run;
    ``inputs``: flag -> path of its input files; ``resume``: a checkpoint, ``auto`` or True (the folder's last);
    ``parent``: ``(folder, flag)`` that may hold the run folder (checked by `Run.claim` when it does);
    ``where``: `Run`'s ``flag``, ``what`` and ``files``."""
    resume = "auto" if resume is True else resume or None
    run = Run(folder, identity, state, rule=dict(resume=bool(resume), overwrite=overwrite, skip_finished=skip_finished,
                                                 self_resuming=self_resuming), **where)
    now = state()
    run.status, key = now.status, run.flag.lstrip("-")
    if plan:
        print(now.line(), flush=True)
        run.outcome = {"plan": now.status, key: folder, "detail": now.detail}
        return run
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: continue the run, or start it afresh")
    check_not_input_folder(folder, inputs, run.flag)
    if resume == "auto" and now.status == "new":
        _point_to_other_epochs(folder, identity)
    skip, resumed = run.decide(now)
    if skip:
        run.outcome = {"skipped": True, key: folder, **now.summary}
        return run
    run.resume = "auto" if resumed else resume
    if run.resume:
        check_resume_inputs(read_stored_identity(os.path.join(folder, "config.yaml")), identity, folder)
    if parent and os.path.dirname(os.path.abspath(folder)) == os.path.abspath(parent[0]):
        run.parent = parent
    if process().rank == 0:
        run.writable(create=False)
    return run


def plan_training(cfg: Any, identity: Identity, inputs: Mapping[str, Optional[str]], arch: str) -> Run:
    """`plan_run` of a training stage (1 and 4) from its options: ``cfg.run_dir``, which holds ``config.yaml`` and
    ``<arch>_last.pth`` (`training_state`), ``--plan``, ``--resume``, ``--overwrite``, ``--skip_finished``."""
    folder = cfg.run_dir
    return plan_run(folder, identity, functools.partial(training_state, folder, identity, arch, int(cfg.epochs)),
                    inputs, plan=cfg.plan, resume=cfg.resume, overwrite=cfg.overwrite, skip_finished=cfg.skip_finished,
                    parent=(cfg.save_dir, "--save_dir"))


def _point_to_other_epochs(folder: str, identity: Identity) -> None:
    """``--resume`` into an empty folder whose name changed with ``--epochs`` (the official teacher naming holds
    the epochs): FileNotFoundError naming the folder of the same settings, if there is one."""
    if identity.pending:
        return
    parent = os.path.dirname(os.path.abspath(folder))
    others = [p for p in glob.glob(os.path.join(glob.escape(parent), f"*-{identity.hash}"))
              if os.path.abspath(p) != os.path.abspath(folder)]
    if len(others) == 1:
        raise FileNotFoundError(f"--resume: {folder} holds no run; the run of these settings with another --epochs "
                                f"is {others[0]}: pass --run_dir {others[0]} to train it further")
