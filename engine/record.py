"""A run's record: its identity, its provenance, and the rule for its folder.

Identity: the options declared to change the result that the run uses, facts (``world_size``) and the SHA-256
of every input file (None while missing: ``pending``). The folder name ends in 8 hex digits of it, without the
options declared ``resume="continue"``; a resumed run may change those and the ``resume="free"`` ones, any other
only with ``--resume_override``, an input file never. Folder (`plan_run`): ``new`` -> train; same identity
``finished`` / ``partial`` -> refused, or skipped / resumed with ``--skip_finished``; ``conflict``, ``pending``
and ``busy`` -> refused; ``--overwrite`` deletes the stage's files; ``--plan`` prints the state. A stage never
writes into the folder of one of its inputs; `Run.claim` locks the folder while the stage writes it."""
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
from topkd_io import LOCK_NAME, busy_text, lock_holder

from .distributed import process

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- options, identity
def option(group, *flags: str, result: bool = True, resume: str = "fixed", **kwargs):
    """``group.add_argument`` that also declares whether the option changes the result (is in the identity) and
    whether a resumed run may change it (``resume``: ``fixed``, ``free``, or ``continue``: free and unhashed)."""
    assert resume in ("fixed", "free", "continue"), resume
    action = group.add_argument(*flags, **kwargs)
    action.result, action.resume = result, resume
    return action


_SHA: Dict[Tuple[str, int, int], str] = {}


def input_sha256(path: Optional[str]) -> Optional[str]:
    """SHA-256 of an input file (a folder: its ``manifest.yaml``), cached by path, size and mtime; None if absent."""
    path = os.path.abspath(os.fspath(path)) if path else ""
    if os.path.isfile(os.path.join(path, "manifest.yaml")):
        path = os.path.join(path, "manifest.yaml")
    if not os.path.isfile(path):
        return None
    key = (path, os.stat(path).st_size, os.stat(path).st_mtime_ns)
    return _SHA[key] if key in _SHA else _SHA.setdefault(key, file_sha256(path))


def plain(value: Any) -> Any:
    """A value as plain YAML/JSON types (tuples -> lists, str-keyed dicts, scalars; anything else as text)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return float(a) == float(b) if numbers else a == b


class Identity:
    """``options`` (name -> value) and ``inputs`` (flag -> SHA-256 or None) of a run; ``free``: the options a
    resumed run may change, ``loose`` those of them outside the `hash`."""

    def __init__(self, options: Mapping[str, Any], inputs: Optional[Mapping[str, Optional[str]]] = None,
                 free: Iterable[str] = (), loose: Iterable[str] = ()):
        self.options, self.inputs = plain(dict(options)), dict(sorted((inputs or {}).items()))
        self.loose = frozenset(loose)
        self.free = frozenset(free) | self.loose

    @property
    def pending(self) -> bool:  # an input file does not exist yet (a planned run)
        return None in self.inputs.values()

    @property
    def hash(self) -> str:
        core = {"options": {k: v for k, v in self.options.items() if k not in self.loose}, "inputs": self.inputs}
        text = json.dumps(core, sort_keys=True, separators=(",", ":"))
        return "pending" if self.pending else hashlib.sha256(text.encode()).hexdigest()[:8]

    def to_dict(self) -> Dict[str, Any]:
        return {"hash": self.hash, "options": dict(self.options), "inputs": dict(self.inputs)}

    def first_difference(self, other: "Identity", ignore: Iterable[str] = ()) -> Optional[str]:
        """``"kd_T 2.0 -> 6.0"`` (self -> other; inputs first) and a count of the other differences; None if equal."""
        def short(sha):
            return "(missing)" if sha is None else sha[:8]

        diffs = [(f"input {k} (sha256)", short(self.inputs.get(k)), short(other.inputs.get(k)))
                 for k in sorted({*self.inputs, *other.inputs}) if self.inputs.get(k) != other.inputs.get(k)]
        diffs += [(k, self.options.get(k, "(unset)"), other.options.get(k, "(unset)"))
                  for k in sorted({*self.options, *other.options} - set(ignore))
                  if not _same(self.options.get(k, "(unset)"), other.options.get(k, "(unset)"))]
        if not diffs:
            return None
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        return f"{diffs[0][0]} {diffs[0][1]!r} -> {diffs[0][2]!r}{more}".replace("'(unset)'", "(unset)")


def identity_of(parser, values: Mapping[str, Any], inputs: Mapping[str, Optional[str]], unused: Iterable[str] = (),
                **facts: Any) -> Identity:
    """The result options ``parser`` declares among ``values`` (less ``unused``), ``facts`` and ``inputs``."""
    declared = {a.dest: a for a in parser._actions if a.option_strings}  # argparse lists no actions publicly
    resume = {k: getattr(a, "resume", "fixed") for k, a in declared.items()}
    options = {k: v for k, v in values.items()
               if k in declared and getattr(declared[k], "result", True) and k not in set(unused)}
    return Identity({**options, **facts}, inputs, free=[k for k, r in resume.items() if r == "free"],
                    loose=[k for k, r in resume.items() if r == "continue"])


def stored_identity(data: Any) -> Optional[Identity]:
    """The identity a config/manifest mapping records (``identity: {options, inputs}``), if any."""
    found = data.get("identity") if isinstance(data, dict) else None
    return Identity(found.get("options") or {}, found.get("inputs") or {}) if isinstance(found, dict) else None


def read_stored_identity(config_path: str) -> Optional[Identity]:
    try:
        return stored_identity(read_yaml(config_path, "run configuration")) if os.path.isfile(config_path) else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------- resume
Change = Tuple[str, Any, Any]


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any], only: Iterable[str]) -> List[Change]:
    """``[(key, stored, new)]`` for the keys in ``only`` that both sides hold and that differ."""
    return [(k, stored[k], current[k]) for k in sorted(set(only))
            if k in stored and k in current and not _same(stored[k], current[k])]


def format_changes(changes: List[Change]) -> str:
    """``lr 0.05 -> 0.5, momentum 0.9 -> 0.0``."""
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)


def resume_changes(stored: Mapping[str, Any], identity: Optional[Identity]) -> List[Change]:
    """The options of ``identity`` a resumed run may not change that differ from the stored configuration's."""
    old = (stored.get("identity") or {}).get("options") or stored
    return config_changes(old, identity.options, set(identity.options) - identity.free) if identity else []


def check_resume(path: str, changes: List[Change], override: bool, epoch: int) -> Optional[Dict[str, Any]]:
    """Refuse ``changes`` unless ``override`` -> the history entry (``{"epoch", "changes": {key: [old, new]}}``)."""
    if changes and not override:
        raise TopKDError(f"--resume: {path} was trained with other settings ({format_changes(changes)}); resume "
                         f"with the stored values, or add --resume_override to apply the new ones from epoch {epoch}")
    return {"epoch": int(epoch), "changes": {k: [old, new] for k, old, new in changes}} if changes else None


def check_epochs(path: str, done: int, stored: Any, requested: int) -> Optional[str]:
    """``--epochs`` on resume: fewer than the epochs done is refused; a change -> a line to log."""
    if requested < done:
        raise TopKDError(f"--resume: {path} has already trained {done} epochs, more than --epochs {requested}; "
                         f"pass --epochs {done} or more (or start a new run folder)")
    changed = stored is not None and int(stored) != int(requested)
    return f"--epochs changed from {stored} to {requested} at epoch {done + 1}" if changed else None


# ------------------------------------------------------------------------------------------- provenance
@functools.lru_cache(maxsize=None)
def git_state(root: str = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) -> Dict[str, Any]:
    """``{"commit", "dirty"}`` of the checkout holding ``root`` (None outside one, or without git)."""
    try:  # "# branch.oid <sha>", then one line per changed tracked file
        done = subprocess.run(["git", "-C", os.fspath(root), "status", "--porcelain=v2", "--branch",
                               "--untracked-files=no"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    lines = done.stdout.splitlines() if done.returncode == 0 else []
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    if commit == "(initial)":
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": any(not line.startswith("#") for line in lines)}


def versions() -> Dict[str, Optional[str]]:
    """Versions of python and the libraries that decide the numbers (None for one that is not installed)."""
    out: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "gudhi", "numpy"):
        try:
            out[name] = str(getattr(__import__(name), "__version__", "?"))
        except ImportError:
            out[name] = None
    return out


def provenance(inputs: Optional[Mapping[str, Optional[str]]] = None, device: Any = "cpu",
               **extra: Any) -> Dict[str, Any]:
    """Where a result comes from: commit, versions, date, host, device, command and input files; plus ``extra``."""
    device, world = str(device), process().world_size
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        device = f"cuda:{index} {torch.cuda.get_device_name(index)}"
    files = {k: os.path.abspath(os.fspath(v)) for k, v in (inputs or {}).items() if v}
    return {**git_state(), "versions": versions(), "host": socket.gethostname(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device + (f" x{world} processes" if world > 1 else ""),
            "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
            "inputs": {k: {"path": p, "sha256": input_sha256(p)} for k, p in files.items()}, **extra}


def header_line(record: Mapping[str, Any]) -> str:
    """One line for the run header: commit, date, device."""
    commit = record.get("commit")
    code = "no git checkout" if commit is None else f"commit {commit[:10]}{' (dirty)' if record.get('dirty') else ''}"
    return f"provenance: {code}, {record.get('date')}, {record.get('device')}, torch {record['versions'].get('torch')}"


def recorded_accuracy(ckpt: Mapping[str, Any]) -> Optional[float]:
    """The test top-1 a checkpoint records: ``best_acc`` (ours, official TopKD), ``accuracy`` (RepDistiller)."""
    try:
        return round(float(ckpt.get("best_acc", ckpt.get("accuracy"))), 4)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------------------------- folders
@dataclass
class FolderState:
    """What ``folder`` holds for a run: ``status``, ``detail`` (why, in words), ``summary`` (accuracies)."""

    folder: str
    status: str
    detail: str = ""
    summary: Dict[str, Any] = field(default_factory=dict)


def compare(folder: str, stored: Optional[Identity], identity: Identity, *, started: bool, done: bool,
            epoch: Optional[int] = None, summary: Optional[Dict[str, Any]] = None, what: str = "run") -> FolderState:
    """The state of ``folder`` (``started``: it holds results; ``stored``: the identity it records) for ``identity``."""
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
        return FolderState(folder, "finished", f"holds a finished {what} of these settings", dict(summary or {}))
    more = stored.first_difference(identity)  # only the options outside the hash can differ here
    return FolderState(folder, "partial", f"holds an unfinished {what} of these settings" +
                       (f" (epoch {epoch})" if epoch is not None else "") + (f"; {more}" if more else ""),
                       dict(summary or {}))


def training_state(folder: str, identity: Identity, arch: str, epochs: int) -> FolderState:
    """State of a stage-1/4 run folder from ``config.yaml`` (its identity) and ``<arch>_last.pth``: finished after
    ``epochs`` epochs of a run asked for them; trained further than asked: a conflict."""
    last, config = os.path.join(folder, f"{arch}_last.pth"), os.path.join(folder, "config.yaml")
    if not os.path.isfile(last):
        foreign = os.path.isdir(folder) and not os.path.isfile(config) and any(
            n not in (LOCK_NAME, "tb") and not n.endswith(".tmp") for n in os.listdir(folder))
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
                           f"asked for", summary)
    return compare(folder, stored_identity(stored_cfg), identity, started=True, summary=summary, epoch=epoch,
                   done=epoch >= int(epochs) and stored_epochs == int(epochs))


@dataclass
class Run:
    """A run folder and what `plan_run` decided: ``outcome`` (the stage's answer) when the run stops here, else
    train in ``folder`` inside `claim`, continuing from ``resume`` when set (a checkpoint, or ``auto``)."""

    folder: str
    identity: Identity
    state: Callable[[], FolderState]  # the folder's state for this run (read again under the lock)
    status: str  # the folder's status when the run was planned
    flag: str = "--run_dir"
    what: str = "run"
    files: Sequence[str] = ("config.yaml", "summary.yaml", "tb", "*_best.pth", "*_last.pth", "eval_*.yaml")
    overwrite: bool = False  # delete the stage's files (``files``) before writing
    parent: Optional[Tuple[str, str]] = None  # (folder, flag) holding the run folder
    resume: Optional[str] = None
    outcome: Optional[Dict[str, Any]] = None

    @property
    def stop(self) -> bool:
        return self.outcome is not None

    def writable(self, create: bool = True) -> None:
        """The run folder and its parent writable, made where missing (``create=False``: those that exist)."""
        for path, flag in ([self.parent] if self.parent else []) + [(self.folder, self.flag)]:
            if create or os.path.exists(path):
                check_output_dir(path, flag)

    @contextlib.contextmanager
    def claim(self):
        """Hold the folder (rank 0's lock) while the block writes it; refused when it changed since the plan."""
        if process().rank != 0:
            yield self
            return
        self.writable()
        with FolderLock(self.folder, flag=self.flag, what=f"{self.what} folder"):
            state = self.state()
            if self.overwrite:
                removed = []
                for path in sorted(p for pattern in self.files
                                   for p in glob.glob(os.path.join(glob.escape(self.folder), pattern))):
                    shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
                    removed.append(os.path.basename(path))
                log.info(f"--overwrite: {self.folder}: " + (f"removed {', '.join(removed)} ({state.detail})"
                                                             if removed else "nothing to replace"))
            elif state.status != self.status:
                raise TopKDError(f"{self.flag} {self.folder} changed while this run was being prepared: it now "
                                 f"{state.detail}; run the command again")
            yield self


def plan_run(folder: str, identity: Identity, state: Callable[[], FolderState], inputs: Mapping[str, Optional[str]],
             *, plan: bool = False, resume: Any = None, overwrite: bool = False, skip_finished: bool = False,
             self_resuming: bool = False, parent: Optional[Tuple[str, str]] = None, **where: Any) -> Run:
    """The run folder of a run and what to do with it -> `Run` (nothing is written), refused in one line where the run
    must not write there. ``inputs``: flag -> path; ``resume``: a checkpoint, ``auto`` or True; ``where``: `Run`'s."""
    resume = "auto" if resume is True else resume or None
    holder = parent if parent and os.path.dirname(os.path.abspath(folder)) == os.path.abspath(parent[0]) else None
    now = state()
    run = Run(folder, identity, state, now.status, overwrite=overwrite, parent=holder, **where)
    flag, key = run.flag, run.flag.lstrip("-")
    if plan:
        print(f"{now.status}\t{now.folder}\t{' '.join(now.detail.split())}", flush=True)  # the --plan answer
        run.outcome = {"plan": now.status, key: folder, "detail": now.detail}
        return run
    if resume and overwrite:
        raise TopKDError("--resume and --overwrite contradict each other: continue the run, or start it afresh")
    here = os.path.realpath(folder)
    for name, path in inputs.items():
        if path and here in (os.path.realpath(path), os.path.dirname(os.path.realpath(path))):
            raise TopKDError(f"{flag} {folder} holds this run's own input --{name} {path}; a stage never writes "
                             f"where its inputs live (it could replace them): choose another {flag}")
    if now.status == "busy":
        raise TopKDError(f"{flag} {folder} is {now.detail}; wait for it to finish or choose another {flag}")
    if now.status == "pending" and not overwrite:
        raise FileNotFoundError(f"{flag} {folder}: {now.detail}; run the stage that makes it first")
    if now.status == "conflict" and not (overwrite or resume):
        raise TopKDError(f"{flag} {folder} {now.detail}; pass --overwrite to replace it, or choose another "
                         f"{flag} (or leave it out: the run folder is named after the settings)")
    run.resume = resume
    if not (overwrite or resume or self_resuming) and now.status in ("finished", "partial"):
        best, last = now.summary.get("best_acc"), now.summary.get("last_acc")
        acc = "" if best is None else f" (best top-1 {float(best):.2f}" + (
            f", last {last:.2f})" if isinstance(last, (int, float)) else ")")
        if not skip_finished and now.status == "finished":
            raise TopKDError(f"{flag} {folder} {now.detail}{acc}; nothing to do: pass --skip_finished to accept "
                             f"it, --resume with a larger --epochs to train it further, or --overwrite to train it "
                             f"again")
        if not skip_finished:
            raise TopKDError(f"{flag} {folder} {now.detail}; pass --resume to continue it or --overwrite to start "
                             f"afresh")
        log.info(f"{'skip' if now.status == 'finished' else 'resume'}: {folder} {now.detail}{acc}")
        if now.status == "finished":
            run.outcome = {"skipped": True, key: folder, **now.summary}
            return run
        run.resume = "auto"
    stored = read_stored_identity(os.path.join(folder, "config.yaml")) if run.resume else None
    for name in sorted({*stored.inputs, *identity.inputs}) if stored else ():
        a, b = stored.inputs.get(name), identity.inputs.get(name)
        if a != b:
            raise TopKDError(f"--resume: {folder} was trained with another --{name} file (sha256 "
                             f"{(a or '(none)')[:8]} -> {(b or '(none)')[:8]}); resume with the same file, or start "
                             f"a new run (leave out --resume)")
    if process().rank == 0:
        run.writable(create=False)
    return run


def plan_training(cfg: Any, identity: Identity, inputs: Mapping[str, Optional[str]], arch: str) -> Run:
    """`plan_run` of a training stage (1 and 4) from its options."""
    state = functools.partial(training_state, cfg.run_dir, identity, arch, int(cfg.epochs))
    return plan_run(cfg.run_dir, identity, state, inputs, plan=cfg.plan, resume=cfg.resume, overwrite=cfg.overwrite,
                    skip_finished=cfg.skip_finished, parent=(cfg.save_dir, "--save_dir"))
