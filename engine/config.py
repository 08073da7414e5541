"""The options of the training stages, their recipes, and the resolved run configuration.

Precedence: command-line flag > ``--config FILE.yaml`` > recipe > parser default. The recipe: ``--recipe``,
else the first answer of the stage's rules (`StageParser`), else the data set's. A YAML value is converted and
checked as a value of its option, and the command line is parsed over those values: it is never read as a flag."""
import argparse
import logging
import os
import re
import shlex
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

from datasets import dataset_info
from datasets.registry import builder_options
from datasets.transforms import INPUT_NORMS  # "tgd" (TGD's official loader constants) or "dataset"
from models import info_of
from topkd_io import TopKDError, check_number, check_utf8, read_yaml, write_yaml

from .distributed import pick_device, process
from .record import option, plain
from .stage import add_stage_args

log = logging.getLogger(__name__)

# The papers' recipes. ``small_arch_lr``: the official learning rate of the networks that declare ``small_lr``
# (MobileNetV2, ShuffleNet) unless --lr is given; ``augment``: none in TGD's official code; ``input_norm``:
# TGD's recipe takes its official loader's constants.
RECIPES: Dict[str, Dict[str, Any]] = {
    "cifar": dict(lr=0.05, small_arch_lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64,
                  epochs=240, lr_decay_epochs=[150, 180, 210], lr_decay_rate=0.1, augment="standard",
                  input_norm="dataset"),
    "imagenet": dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=256,
                     epochs=100, lr_decay_epochs=[30, 60, 90], lr_decay_rate=0.1, augment="standard",
                     input_norm="dataset"),
    "tgd": dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=200,
                lr_decay_epochs=[40, 80, 120, 160], lr_decay_rate=0.2, augment="none", input_norm="tgd"),
}
SEED_LIMIT = 2**63  # seeds are keyed modulo 2**63 (datasets.keyed.item_seed): larger ones would repeat smaller ones

class StageParser(argparse.ArgumentParser):
    """A training stage's parser and its recipe rules ``{option: value} -> recipe name or None``."""

    def __init__(self, *args, recipe_rules: Iterable[Callable[[Dict[str, Any]], Optional[str]]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe_rules = list(recipe_rules)


class EpochsAction(argparse.Action):
    """``--lr_decay_epochs 150 180 210`` (official TopKD) or ``150,180,210`` (RepDistiller) -> ints."""

    def __call__(self, parser, namespace, text, option_string=None):
        parts = text if isinstance(text, (list, tuple)) else [text]
        try:
            epochs = [int(t) for part in parts for t in re.split(r"[,\s]+", str(part)) if t]
        except ValueError:
            raise TopKDError(f"--lr_decay_epochs must be integers like 150,180,210 or 150 180 210, got {text!r}"
                             ) from None
        if any(e <= 0 for e in epochs) or epochs != sorted(epochs):
            raise TopKDError(f"--lr_decay_epochs must be positive and ascending, got {text!r}")
        setattr(namespace, self.dest, epochs)


def add_training_args(parser: argparse.ArgumentParser, save_dir: str = "./save_t_models") -> None:
    """Optimisation, run-folder, resume and device options (recipe-backed ones default to None)."""
    g = parser.add_argument_group("training")
    option(g, "--config", default=None, help="YAML file with option values (flags take precedence)", result=False)
    option(g, "--recipe", default=None, choices=sorted(RECIPES), result=False,  # its values are in the identity
           help="hyper-parameter recipe (default: follows --dataset)")
    g.add_argument("--recipe_check", default=None, choices=sorted(RECIPES),
                   help="refuse the run unless its recipe is this one (what the stage shell scripts pass)")
    g.add_argument("--small_arch_lr", type=float, default=None,
                   help="learning rate of the networks that declare small_lr (MobileNetV2, ShuffleNet), over --lr")
    option(g, "--epochs", type=int, default=None, resume="continue")
    g.add_argument("--batch_size", type=int, default=None, help="global batch size (each of N processes: 1/N)")
    g.add_argument("--lr", "--learning_rate", dest="lr", type=float, default=None)
    g.add_argument("--lr_decay_epochs", nargs="+", action=EpochsAction, default=None, metavar="EPOCH",
                   help="lr milestones: 150 180 210 (the official form) or 150,180,210")
    g.add_argument("--lr_decay_rate", type=float, default=None)
    g.add_argument("--weight_decay", type=float, default=None)
    g.add_argument("--momentum", type=float, default=None)
    g.add_argument("--seed", type=int, default=None, help="random seed (default: the trial number)")
    option(g, "--deterministic", action=argparse.BooleanOptionalAction, default=False, result=False,  # same numbers
           help="deterministic algorithms (bit-exact reruns on the CPU; slower on GPUs)")
    option(g, "--amp", action=argparse.BooleanOptionalAction, default=False, resume="continue", help="CUDA: autocast")
    option(g, "--amp_dtype", default="bfloat16", choices=("bfloat16", "float16"), resume="continue",
           help="with --amp: autocast precision (float16 adds loss scaling)")
    option(g, "--channels_last", action=argparse.BooleanOptionalAction, default=False, result=False)
    g.add_argument("--sync_bn", action=argparse.BooleanOptionalAction, default=False,
                   help="under torchrun on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm)")
    option(g, "--compile", action=argparse.BooleanOptionalAction, default=False, resume="continue",
           help="CUDA: torch.compile the networks, static training batches, fused SGD; ignored on the CPU")
    option(g, "--compile_mode", default="reduce-overhead", resume="continue",
           choices=("reduce-overhead", "default", "max-autotune", "max-autotune-no-cudagraphs"))
    option(g, "--resume", nargs="?", const="auto", default=None, metavar="PATH|auto", result=False,
           help="continue from a checkpoint; 'auto' (or no value) = the run folder's last one")
    option(g, "--init_s", default=None, metavar="PATH", result=False,  # an input: in the identity by its SHA-256
           help="start the trained network from this checkpoint's weights (ours, official, TGD's)")
    option(g, "--resume_override", action="store_true", result=False,
           help="with --resume: apply changed options from the resumed epoch on instead of refusing them")
    option(g, "--trial", "-t", type=int, default=0, resume="free",
           help="trial number: part of the run-folder name, and the seed unless --seed is given")
    option(g, "--save_dir", default=save_dir, help="parent folder of run folders", result=False)
    option(g, "--run_dir", default=None, result=False, help="run folder (default: <save_dir>/<name>-<identity hash>)")
    add_folder_args(g)
    option(g, "--device", default="auto", choices=("auto", "cpu", "cuda"), result=False)
    option(g, "--print_freq", type=int, default=100, help="steps between progress-bar updates", result=False)
    option(g, "--max_steps", type=int, default=0, resume="free",
           help="stop after this many optimisation steps in all (0 = no cap): a smoke test of a command line")


def add_folder_args(group) -> None:
    """``--plan``, ``--skip_finished``, ``--overwrite``: how a stage treats its run folder (`engine.record`)."""
    option(group, "--plan", action="store_true", result=False,
           help="print '<status> <run folder> <why>' (new, finished, partial, conflict or pending) and exit")
    option(group, "--skip_finished", action="store_true", result=False,
           help="accept a finished run of these settings in the run folder; resume an unfinished one")
    option(group, "--overwrite", action="store_true", result=False,
           help="delete what the run folder holds from an earlier run (the files are named) and start afresh")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="cifar100")
    option(g, "--data_root", default="./data", result=False)  # the data it holds is in the identity
    option(g, "--download", action=argparse.BooleanOptionalAction, default=False, result=False)
    g.add_argument("--val_fraction", type=float, default=0.0,
                   help="fraction of the training set held out (stratified, the same images for every method and "
                        "seed) to select the best checkpoint on (default 0: selected on test, the papers' way)")
    add_stage_args(g, 4, "DataLoader workers (default 4; the official TopKD code's default is 1, RepDistiller's 8)")
    g.add_argument("--image_size", type=int, default=None, help="image side for datasets that allow it (digits)")
    g.add_argument("--train_fraction", type=float, default=None, help="digits: a fixed stratified training fraction")
    g.add_argument("--augment", default=None, choices=("none", "standard"),
                   help="training augmentation: crop/flip, or none (TGD's official code); default: the recipe's")
    g.add_argument("--input_norm", default=None, choices=INPUT_NORMS,
                   help="'tgd': TGD's official loader's constants; 'dataset': each data set's statistics, raw PIs; "
                        "default: the recipe's")
    option(g, "--no_verify", action="store_true", result=False,
           help="skip the SHA-256 check of earlier stages' files (sizes and manifest checksums are still checked)")
    option(g, "--data_on_device", action=argparse.BooleanOptionalAction, default=False, result=False,
           help="hold the data set on the training device and augment batches there (same random draws)")


def data_options(cfg: argparse.Namespace) -> Dict[str, Any]:
    """Keyword options for ``datasets.build_datasets`` from the data flags (``normalize`` where the set takes it)."""
    options: Dict[str, Any] = {"train_augment": getattr(cfg, "augment", "standard") != "none"}
    if getattr(cfg, "image_size", None):
        options["image_size"] = cfg.image_size
    norm = getattr(cfg, "input_norm", None) or "dataset"
    if norm != "dataset" and "normalize" in builder_options(getattr(cfg, "dataset", None)):
        options["normalize"] = norm
    if getattr(cfg, "train_fraction", None) is not None:
        options["train_fraction"] = cfg.train_fraction
    return options


def recorded_data_options(record: Dict[str, Any], dataset: str, **given: Any) -> Dict[str, Any]:
    """`data_options` rebuilding a run's data on ``dataset`` from its recorded configuration and the options given
    now (None: not given): a recorded option only where the builder takes it, a given one always (refused there)."""
    given = {k: v for k, v in given.items() if v is not None}
    options = data_options(argparse.Namespace(**{**record, **given, "dataset": dataset}))
    takes = set(builder_options(dataset))
    return {k: v for k, v in options.items() if k in takes or k in given}


def config_value(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """The YAML ``value`` of option ``key``, converted and checked as its flag's words would be (a switch: a
    boolean; ``null`` where the default is None; a list where the option takes several values; `EpochsAction`)."""
    where = f"config file {path}: option {key}"
    if action.nargs == 0 and isinstance(action.const, bool) or isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise TopKDError(f"{where} must be true or false, got {value!r}")
        return value
    if value is None:
        if action.default is not None:
            raise TopKDError(f"{where} needs a value (null is not allowed)")
        return None
    many = action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1)
    items = value if isinstance(value, list) and many else [value]
    if any(isinstance(item, (dict, list)) for item in items):
        raise TopKDError(f"{where} must be a single value, got {value!r}")
    ours = type(action).__module__ != "argparse"
    converted = []
    for item in items:
        if action.type is None and not ours and not isinstance(item, str):
            raise TopKDError(f"{where} must be text, got {item!r}; quote it")
        try:
            converted.append(str(item) if action.type is None else action.type(str(item)))
        except argparse.ArgumentTypeError as exc:
            raise TopKDError(f"{where}: {exc}") from None
        except (TypeError, ValueError):
            kind = {int: "an integer", float: "a number"}.get(action.type, f"a value like --{action.dest} takes")
            raise TopKDError(f"{where} must be {kind}, got {item!r}") from None
        if action.choices is not None and converted[-1] not in action.choices:
            raise TopKDError(f"{where} must be one of {', '.join(map(str, action.choices))}, got {item!r}")
    result = converted if many else converted[0]
    if ours:
        namespace = argparse.Namespace()
        try:
            action(None, namespace, result)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise TopKDError(f"{where}: {' '.join(str(exc).split())}") from None
        result = getattr(namespace, action.dest)
    return result


def read_config_file(path: str, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options of a ``--config`` YAML file as a Namespace (the defaults the command line is parsed over)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} not found; pass an existing YAML file to --config")
    data = read_yaml(path, "config file", "write one 'option: value' per line")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise TopKDError(f"config file {path} must hold a mapping of option: value")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    unknown = sorted(str(k) for k in data if k not in actions)
    if unknown:
        raise TopKDError(f"config file {path} has unknown option(s) {', '.join(unknown)}; "
                         f"valid ones: {', '.join(sorted(actions))}")
    return argparse.Namespace(**{key: config_value(path, key, value, actions[key]) for key, value in data.items()})


def parse_config(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                 arch_key: str = "model") -> argparse.Namespace:
    """Parse ``argv``, resolve flags > YAML > recipe > defaults, validate -> the Namespace."""
    args = parser.parse_args(argv)
    if args.config:  # the file's values first, then the command line over them
        args = parser.parse_args(argv, namespace=read_config_file(args.config, parser))
    merged = vars(args)
    name = merged.get("recipe") or next(
        (r for r in (rule(dict(merged)) for rule in getattr(parser, "recipe_rules", ())) if r), None)
    merged["recipe"] = name or (dataset_info(merged["dataset"]).recipe if merged.get("dataset") else "cifar")
    recipe = RECIPES[merged["recipe"]]
    check_recipe(merged.pop("recipe_check", None), merged["recipe"])
    info = info_of(str(merged.get(arch_key) or ""))
    small = info is not None and info.small_lr
    small_arch_lr = merged.pop("small_arch_lr", None)  # it only picks the lr (recorded as such)
    if small and (small_arch_lr is not None or merged.get("lr") is None):  # --small_arch_lr over --lr
        merged["lr"] = small_arch_lr if small_arch_lr is not None else recipe.get("small_arch_lr")
    for key, value in recipe.items():
        if key != "small_arch_lr" and merged.get(key) is None:
            merged[key] = list(value) if isinstance(value, list) else value
    # the seed rule: the trial number unless --seed (or a seed: in the YAML file) is given, so trials differ
    merged["seed_from"] = "--trial" if merged.get("seed") is None else "--seed"
    merged["seed"] = int(merged.get("trial") or 0) if merged.get("seed") is None else merged["seed"]
    if merged.get("sync_bn") and process().world_size == 1:
        log.warning("--sync_bn does nothing in one process: recorded as false")
        merged["sync_bn"] = False
    if merged.get("sync_bn") and pick_device(merged.get("device", "auto")).type != "cuda":
        raise TopKDError("--sync_bn needs CUDA: torch's SyncBatchNorm does not run on the CPU; drop --sync_bn")
    cfg = argparse.Namespace(**merged)
    check_args(cfg)
    for flag, low in (("epochs", 1), ("batch_size", 1), ("print_freq", 1), ("num_workers", 0), ("threads", 0),
                      ("max_steps", 0)):
        value = getattr(cfg, flag, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TopKDError(f"--{flag} must be {'a positive integer' if low else 'an integer >= 0'}, got {value}")
    check_number(cfg.lr, "--lr", low=0, low_open=True)
    check_number(cfg.weight_decay, "--weight_decay", low=0)
    check_number(cfg.momentum, "--momentum", low=0, high=1, high_open=True)
    check_number(cfg.lr_decay_rate, "--lr_decay_rate", low=0, low_open=True)
    check_number(getattr(cfg, "val_fraction", 0.0), "--val_fraction", low=0, high=1, high_open=True)
    if getattr(cfg, "init_s", None) and not os.path.isfile(cfg.init_s):
        raise FileNotFoundError(f"--init_s {cfg.init_s} not found; pass an existing checkpoint file")
    return cfg


def check_recipe(expected: Optional[str], name: str) -> None:
    """``--recipe_check``: refused unless the run's recipe is ``expected``, listing the shell-script values to set."""
    if expected and expected != name:
        values = {**RECIPES[name], "small_arch_lr": RECIPES[name].get("small_arch_lr", RECIPES[name]["lr"])}
        words = " ".join(f"{k.upper()}={shlex.quote(' '.join(map(str, v)) if isinstance(v, list) else str(v))}"
                         for k, v in values.items())
        raise TopKDError(f"this run takes the {name} recipe (from its data set, input or method), but the values "
                         f"given are the {expected} recipe's (--recipe_check {expected}, from a stage shell script): "
                         f"set RECIPE={name} {words}, or pass --recipe {expected} to train with the values given")


def check_args(args: argparse.Namespace) -> None:
    """Every stage's check of its options: text is valid UTF-8 (it goes into YAML files), ``--seed`` in [0, 2**63)."""
    for key, value in vars(args).items():  # free text is named like its flag (other values are typed)
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            check_utf8(item, f"--{key}")
    seed = getattr(args, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise TopKDError(f"--seed must be an integer from 0 to 2**63-1 = {SEED_LIMIT - 1}, got {seed}")


def write_config(cfg: argparse.Namespace, path: str) -> None:
    write_yaml(path, plain(vars(cfg)), sort_keys=True)


def teacher_run_name(arch: str, dataset: str, epochs: int, batch_size: int, lr: float, weight_decay: float,
                     trial: int) -> str:
    """``resnet56_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_1``: the official TopKD folder naming."""
    def number(value: float) -> str:  # as the official scripts print it (0.05, 0.0005)
        return repr(float(value)) if "e" not in repr(float(value)) else f"{value:.10f}".rstrip("0")

    return (f"{arch}_{dataset}_epoch_{int(epochs)}_bs_{int(batch_size)}_lr_{number(lr)}_"
            f"decay_{number(weight_decay)}_trial_{trial}")
