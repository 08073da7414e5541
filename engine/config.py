"""Command-line arguments shared by the training stages, recipes, and the resolved run configuration.

Precedence for every option: explicit command-line flag > value in ``--config FILE.yaml`` > recipe >
parser default. Recipes are a name -> dict registry (``RECIPES``). Unless ``--recipe`` names one, the
recipe is the first one the stage's rules give (`StageParser.recipe_rules`: the chosen method's declared
``recipe``, TGD's for the PI teacher), else the one the data set declares (``datasets.dataset_info``).
The small-network learning rate of a recipe goes to the architectures that declare ``small_lr``
(``models.info_of``). Each ``option: value`` of a ``--config`` file is converted and checked as a value of
that option (its type, choices, list-ness and own parsing; `config_value`) and the command line is parsed
over those values, so a YAML value is typed like its flag and can never be read as a flag itself.
The resolved configuration is an ``argparse.Namespace`` whose ``lr_decay_epochs`` is a list of ints;
`write_config` stores it as YAML in the run folder.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from datasets import dataset_info
from datasets.registry import builder_options
from datasets.transforms import (
    INPUT_NORMS,  # "tgd" (TGD's official loader constants) or "dataset"
)
from models import info_of
from topkd_io import check_number, check_utf8, read_yaml, write_yaml

from .distributed import pick_device, process
from .record import option, plain
from .stage import add_stage_args

log = logging.getLogger(__name__)

# Hyper-parameters of the papers' recipes. ``small_arch_lr`` is the learning rate the official code uses
# when the trained network declares ``small_lr`` (MobileNetV2, ShuffleNet; unless --lr is given). ``augment``
# is the training-data augmentation (``AUGMENTS``): TGD's official code trains without any. ``input_norm``
# (``INPUT_NORMS``): what the inputs are normalised with; TGD's recipe takes its official loader's constants.
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
# The recipe of a parser without a --dataset option.
DEFAULT_RECIPE = "cifar"
# --augment: "standard" = the data set's usual training transform (crop/flip), "none" = eval transform
AUGMENTS = ("none", "standard")
DEVICES = ("auto", "cpu", "cuda")

RecipeRule = Callable[[Dict[str, Any]], Optional[str]]


class StageParser(argparse.ArgumentParser):
    """The parser of a training stage: an ``ArgumentParser`` that also holds the stage's recipe rules.

    ``recipe_rules``: functions ``{option: value} -> recipe name or None`` consulted in order, before the
    data set's recipe, when ``--recipe`` is not given (train_student.py: the method's declared ``recipe``;
    train_teacher.py: TGD's for ``--input pi``).
    """

    def __init__(self, *args, recipe_rules: Iterable[RecipeRule] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe_rules: List[RecipeRule] = list(recipe_rules)


def parse_epochs_list(text: Any) -> List[int]:
    """``"150,180,210"``, ``"150 180 210"`` (or a list of either) -> ``[150, 180, 210]``; empty -> no decay."""
    if isinstance(text, (list, tuple)):
        items = [t for part in text for t in re.split(r"[,\s]+", str(part)) if t]
    else:
        items = [t for t in re.split(r"[,\s]+", str(text)) if t]
    try:
        epochs = [int(t) for t in items]
    except (TypeError, ValueError):
        raise ValueError(f"--lr_decay_epochs must be integers like 150,180,210 or 150 180 210, got {text!r}") from None
    if any(e <= 0 for e in epochs) or epochs != sorted(epochs):
        raise ValueError(f"--lr_decay_epochs must be positive and ascending, got {text!r}")
    return epochs


class EpochsAction(argparse.Action):
    """``--lr_decay_epochs 150 180 210`` (official TopKD) or ``--lr_decay_epochs 150,180,210`` (RepDistiller)
    -> ``[150, 180, 210]``; bad values are a ValueError naming the flag."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, parse_epochs_list(values))


def add_training_args(parser: argparse.ArgumentParser, save_dir: str = "./save_t_models") -> None:
    """Optimisation, run-folder, resume and device options (recipe-backed ones default to None)."""
    g = parser.add_argument_group("training")
    option(g, "--config", default=None, help="YAML file with option values (flags take precedence)", result=False)
    option(g, "--recipe", default=None, choices=sorted(RECIPES), result=False,  # its values are in the identity
           help="hyper-parameter recipe (default: follows --dataset)")
    g.add_argument("--recipe_check", default=None, choices=sorted(RECIPES),
                   help="refuse the run unless its recipe is this one (the stage shell scripts pass the recipe "
                        "their values are)")
    g.add_argument("--small_arch_lr", type=float, default=None,
                   help="learning rate of the networks that declare small_lr (MobileNetV2, ShuffleNet), over --lr "
                        "(default: the recipe's, 0.01 in CIFAR's, unless --lr is given)")
    option(g, "--epochs", type=int, default=None, resume="continue")
    g.add_argument("--batch_size", type=int, default=None,
                   help="global batch size; under torchrun each process gets batch_size / world_size")
    g.add_argument("--lr", "--learning_rate", dest="lr", type=float, default=None)
    g.add_argument("--lr_decay_epochs", nargs="+", action=EpochsAction, default=None, metavar="EPOCH",
                   help="lr milestones: 150 180 210 (the official form) or 150,180,210")
    g.add_argument("--lr_decay_rate", type=float, default=None)
    g.add_argument("--weight_decay", type=float, default=None)
    g.add_argument("--momentum", type=float, default=None)
    g.add_argument("--seed", type=int, default=None,
                   help="random seed (default: the trial number, --trial 3 -> seed 3, so trials differ; "
                        "config.yaml records the seed used)")
    option(g, "--deterministic", action=argparse.BooleanOptionalAction, default=False, result=False,  # same numbers
           help="deterministic algorithms (bit-exact reruns on the CPU; slower on GPUs)")
    option(g, "--amp", action=argparse.BooleanOptionalAction, default=False, resume="continue",
           help="mixed precision (CUDA only)")
    option(g, "--amp_dtype", default="bfloat16", choices=("bfloat16", "float16"), resume="continue",
           help="with --amp: autocast precision (float16 adds loss scaling)")
    option(g, "--channels_last", action=argparse.BooleanOptionalAction, default=False, result=False)
    g.add_argument("--sync_bn", action=argparse.BooleanOptionalAction, default=False,
                   help="under torchrun on CUDA: BatchNorm statistics over the global batch (torch's SyncBatchNorm) "
                        "for the trained network, as one process sees them; recorded as false in a single process")
    option(g, "--compile", action=argparse.BooleanOptionalAction, default=False, resume="continue",
           help="CUDA: torch.compile the networks (CUDA graphs with the default mode), static "
                "training batches (drop_last), fused SGD; ignored on the CPU")
    option(g, "--compile_mode", default="reduce-overhead", resume="continue",
           choices=("reduce-overhead", "default", "max-autotune", "max-autotune-no-cudagraphs"),
           help="torch.compile mode for --compile")
    option(g, "--resume", nargs="?", const="auto", default=None, metavar="PATH|auto", result=False,
           help="continue from a checkpoint; 'auto' (or no value) = the run folder's last one")
    option(g, "--init_s", default=None, metavar="PATH", result=False,  # an input: in the identity by its SHA-256
           help="start the trained network (the student in train_student.py) from this checkpoint's "
                "weights: ours, official {'model': ...}, or TGD's released {'model_state_dict': ...}; "
                "optimizer and schedule start fresh (see models.loading)")
    option(g, "--resume_override", action="store_true", result=False,
           help="with --resume: apply changed optimisation options (lr, schedule, method, ...) from the "
                "resumed epoch on instead of refusing them")
    option(g, "--trial", "-t", type=int, default=0, resume="free",
           help="trial number: part of the run-folder name, and the seed unless --seed is given")
    option(g, "--save_dir", default=save_dir, help="parent folder of run folders", result=False)
    option(g, "--run_dir", default=None, result=False,
           help="exact run folder (default: <save_dir>/<readable name>-<identity hash>)")
    add_folder_args(g)
    option(g, "--device", default="auto", choices=DEVICES, result=False)
    option(g, "--print_freq", type=int, default=100, help="steps between progress-bar updates", result=False)
    option(g, "--max_steps", type=int, default=0, resume="free",
           help="stop the run after this many optimisation steps in all (0 = no cap): a smoke test of a "
                "full-size command line")


def add_folder_args(group) -> None:
    """``--plan``, ``--skip_finished``, ``--overwrite``: how a stage treats its run folder (`engine.record`)."""
    option(group, "--plan", action="store_true", result=False,
           help="print '<status> <run folder> <why>' (status new, finished, partial, conflict or pending) and exit "
                "without writing anything")
    option(group, "--skip_finished", action="store_true", result=False,
           help="when the run folder holds a finished run of these settings, say so and exit; an unfinished one "
                "is resumed (what the shell scripts pass)")
    option(group, "--overwrite", action="store_true", result=False,
           help="delete what the run folder holds from an earlier run (the files are named) and start afresh")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Dataset options passed on to ``datasets.build_datasets``."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="cifar100")
    option(g, "--data_root", default="./data", result=False)  # the data it holds is in the identity
    option(g, "--download", action=argparse.BooleanOptionalAction, default=False, result=False)
    g.add_argument("--val_split", type=float, default=0.0,
                   help="fraction of the training set held out for model selection (0 = select on test)")
    add_stage_args(g, 4, "DataLoader workers (default 4; the official TopKD code's default is 1, RepDistiller's 8)")
    g.add_argument("--image_size", type=int, default=None, help="image side for datasets that allow it (digits)")
    g.add_argument("--train_fraction", type=float, default=None,
                   help="digits: train on a fixed stratified fraction of the training split (the same images for "
                        "every seed; default: all of it)")
    g.add_argument("--augment", default=None, choices=AUGMENTS,
                   help="training augmentation: 'standard' (the data set's crop/flip) or 'none' (as TGD's "
                        "official code); default: the recipe's (none for TGD, standard otherwise)")

    g.add_argument("--input_norm", default=None, choices=INPUT_NORMS,
                   help="input normalisation: 'tgd' = TGD's official loader (CIFAR-10/100 and CINIC-10 images with "
                        "its CIFAR-100 statistics 0.507/0.487/0.441, 0.267/0.256/0.276; image PIs with its per-channel "
                        "constants), 'dataset' = each data set's own statistics and raw PIs in [0, 1]; default: the "
                        "recipe's (tgd under --distill tgd, --input pi and --recipe tgd, dataset otherwise)")
    option(g, "--no_verify", action="store_true", result=False,
           help="skip the SHA-256 check of the files a run reads from earlier stages (stage-2 folders, "
                "image-PI caches); sizes and the manifests' own checksums are still checked (logged)")
    option(g, "--data_on_device", action=argparse.BooleanOptionalAction, default=False, result=False,
           help="hold the whole data set on the training device and crop/flip/normalise batches there "
                "(the in-memory data sets and TGD's PI caches); same keyed random draws as the CPU path")


def data_options(cfg: argparse.Namespace) -> Dict[str, Any]:
    """Keyword options for ``datasets.build_datasets`` from the resolved data flags
    (``train_augment`` from ``--augment``, ``image_size`` when given, ``normalize`` from ``--input_norm`` for
    the data sets that take it)."""
    options: Dict[str, Any] = {"train_augment": getattr(cfg, "augment", "standard") != "none"}
    if getattr(cfg, "image_size", None):
        options["image_size"] = cfg.image_size
    norm = getattr(cfg, "input_norm", None) or "dataset"
    if norm != "dataset" and "normalize" in builder_options(getattr(cfg, "dataset", None)):
        options["normalize"] = norm  # data sets without the option (digits, ImageNet) keep their statistics
    if getattr(cfg, "train_fraction", None) is not None:
        options["train_fraction"] = cfg.train_fraction
    return options


def recorded_data_options(record: Dict[str, Any], dataset: str, **given: Any) -> Dict[str, Any]:
    """`data_options` that rebuild a finished run's data on ``dataset`` from its recorded configuration
    (``record``, a checkpoint's ``config``) and the options the user gives now (``given``, None = not given,
    over the record). A recorded option goes only to a builder that takes it (a digits run's image size is not
    passed to CIFAR); a given one always goes, so ``build_datasets`` refuses one the data set lacks."""
    given = {k: v for k, v in given.items() if v is not None}
    options = data_options(argparse.Namespace(**{**record, **given, "dataset": dataset}))
    takes = set(builder_options(dataset))
    return {k: v for k, v in options.items() if k in takes or k in given}


# ----------------------------------------------------------------------------- --config YAML: option values
def _config_options(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    """``dest -> action`` of every option a ``--config`` file may set (``--help`` and ``--config`` left out).
    argparse has no public list of a parser's actions; ``_actions`` is only read here."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}


def _is_switch(action: argparse.Action) -> bool:
    """Options that take no value on the command line (store_true, --x/--no-x)."""
    return action.nargs == 0 and isinstance(action.const, bool) or isinstance(action, argparse.BooleanOptionalAction)


def _takes_many(action: argparse.Action) -> bool:
    return action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1)


def _kind(action: argparse.Action) -> str:
    return {int: "an integer", float: "a number", None: "text"}.get(action.type, f"a value like --{action.dest} takes")


def _convert(where: str, action: argparse.Action, item: Any) -> Any:
    """One YAML scalar as one command-line word of ``action`` would be: its ``type`` applied to the text,
    its ``choices`` checked. argparse's own actions keep text options text, so they take YAML strings only."""
    if action.type is None and type(action).__module__ == "argparse" and not isinstance(item, str):
        raise ValueError(f"{where} must be text, got {item!r}; quote it")
    value = str(item)
    if action.type is not None:
        try:
            value = action.type(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{where}: {exc}") from None
        except (TypeError, ValueError):
            raise ValueError(f"{where} must be {_kind(action)}, got {item!r}") from None
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{where} must be one of {', '.join(map(str, action.choices))}, got {item!r}")
    return value


def config_value(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """The YAML ``value`` of option ``key`` as the option's value, converted and checked as its flag's words.

    A switch takes a YAML boolean; ``null`` is allowed where the option's default is None; a list only where
    the option takes several values; each item goes through `_convert`; an option with its own action (the
    milestones' `EpochsAction`) then parses the items as it does on the command line. A value is only ever
    a value: nothing in it is read as a flag. Raises ValueError naming the file and the key.
    """
    where = f"config file {path}: option {key}"
    if _is_switch(action):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if value is None:
        if action.default is not None:
            raise ValueError(f"{where} needs a value (null is not allowed)")
        return None
    many = _takes_many(action)
    items = value if isinstance(value, list) and many else [value]
    if any(isinstance(item, (dict, list)) for item in items):
        raise ValueError(f"{where} must be a single value, got {value!r}")
    converted = [_convert(where, action, item) for item in items]
    result = converted if many else converted[0]
    if type(action).__module__ == "argparse":
        return result
    namespace = argparse.Namespace()
    try:
        action(None, namespace, result)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ValueError(f"{where}: {' '.join(str(exc).split())}") from None
    return getattr(namespace, action.dest)


def read_config_file(path: str, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The options of a ``--config`` YAML file as a Namespace of option values (`config_value`): the
    defaults the command line is then parsed over. Raises FileNotFoundError / ValueError naming the file
    (and the key, for a bad value)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} not found; pass an existing YAML file to --config")
    data = read_yaml(path, "config file", "write one 'option: value' per line")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value")
    actions = _config_options(parser)
    unknown = sorted(str(k) for k in data if k not in actions)
    if unknown:
        raise ValueError(f"config file {path} has unknown option(s) {', '.join(unknown)}; "
                         f"valid ones: {', '.join(sorted(actions))}")
    return argparse.Namespace(**{key: config_value(path, key, value, actions[key]) for key, value in data.items()})


# ----------------------------------------------------------------------------- recipes
def recipe_for(dataset: Optional[str], name: Optional[str] = None, options: Optional[Dict[str, Any]] = None,
               rules: Iterable[RecipeRule] = ()) -> str:
    """The recipe's name: ``name`` if given, else the first answer of ``rules`` (each called with the
    merged option values), else the recipe ``dataset`` declares (``DEFAULT_RECIPE`` without a data set)."""
    if not name:
        name = next((r for r in (rule(dict(options or {})) for rule in rules) if r), None)
    if not name:
        name = dataset_info(dataset).recipe if dataset else DEFAULT_RECIPE
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(sorted(RECIPES))}")
    return name


def parse_config(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None,
                 arch_key: str = "model") -> argparse.Namespace:
    """Parse ``argv`` and resolve flags > YAML > recipe > defaults; validate; return the Namespace.

    ``arch_key`` names the option holding the trained architecture (``model`` for teachers,
    ``model_s`` for students): an architecture declaring ``small_lr`` gets the recipe's ``small_arch_lr``.
    """
    args = parser.parse_args(argv)
    if args.config:  # the file's values first, then the command line over them
        args = parser.parse_args(argv, namespace=read_config_file(args.config, parser))
    merged = vars(args)
    merged["recipe"] = recipe_for(merged.get("dataset"), merged.get("recipe"), merged,
                                  getattr(parser, "recipe_rules", ()))
    recipe = RECIPES[merged["recipe"]]
    check_recipe(merged.pop("recipe_check", None), merged["recipe"])
    info = info_of(str(merged.get(arch_key) or ""))
    small_arch_lr = merged.pop("small_arch_lr", None)  # it only picks the lr (recorded as such)
    if small_arch_lr is not None and info is not None and info.small_lr:
        merged["lr"] = small_arch_lr
    for key, value in recipe.items():
        if key == "small_arch_lr":
            continue
        if merged.get(key) is None:
            if key == "lr" and "small_arch_lr" in recipe and info is not None and info.small_lr:
                value = recipe["small_arch_lr"]
            merged[key] = list(value) if isinstance(value, list) else value
    seed_from_trial(merged)
    merged["lr_decay_epochs"] = parse_epochs_list(merged["lr_decay_epochs"])
    if merged.get("sync_bn"):
        merged["sync_bn"] = check_sync_bn(merged)
    cfg = argparse.Namespace(**merged)
    check_text_options(cfg, parser)
    validate_config(cfg)
    return cfg


def check_sync_bn(values: Dict[str, Any]) -> bool:
    """``--sync_bn``: recorded as false in one process, where it does nothing; refused off CUDA."""
    if process().world_size == 1:
        log.warning("--sync_bn does nothing in one process: recorded as false")
        return False
    if pick_device(values.get("device", "auto")).type != "cuda":
        raise ValueError("--sync_bn needs CUDA: torch's SyncBatchNorm does not run on the CPU; drop --sync_bn")
    return True


def check_recipe(expected: Optional[str], name: str) -> None:
    """``--recipe_check``: ValueError unless the run's recipe ``name`` is ``expected``. The stage shell scripts
    hold one recipe's values, in variables named like the flags in capitals: the message lists the values to set."""
    if expected and expected != name:
        values = dict(RECIPES[name])
        values.setdefault("small_arch_lr", values["lr"])
        words = " ".join(f"{k.upper()}={shlex.quote(' '.join(map(str, v)) if isinstance(v, list) else str(v))}"
                         for k, v in values.items())
        raise ValueError(f"this run takes the {name} recipe (from its data set, input or method), but the values "
                         f"given are the {expected} recipe's (--recipe_check {expected}, from a stage shell script): "
                         f"set RECIPE={name} {words}, or pass --recipe {expected} to train with the values given")


def seed_from_trial(values: Dict[str, Any]) -> None:
    """The seed rule: unless ``--seed`` (or a ``seed:`` in the YAML config) is given, the seed is the trial
    number (``--trial 3`` -> seed 3), so every trial is a distinct, reproducible run. Sets ``seed`` and
    ``seed_from`` (``"--seed"`` or ``"--trial"``) in ``values``."""
    if values.get("seed") is None:
        values["seed"] = int(values.get("trial") or 0)
        values["seed_from"] = "--trial"
    else:
        values["seed_from"] = "--seed"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


SEED_LIMIT = 2**63  # seeds are keyed modulo 2**63 (engine.seed.item_seed): larger ones would repeat smaller ones


def check_seed(value: Any, flag: str = "--seed") -> int:
    """``value`` as a seed: an integer in [0, 2**63 - 1] (it fits 64 bits, and every such seed gives its own
    draws); ValueError naming ``flag`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{flag} must be an integer from 0 to 2**63-1 = {SEED_LIMIT - 1}, got {value}")
    return value


def check_text_options(cfg: argparse.Namespace, parser: Optional[argparse.ArgumentParser] = None) -> None:
    """Every text value (paths above all) must be valid UTF-8, so that it can be written into config.yaml
    and manifests; ValueError naming the flag otherwise (`topkd_io.check_utf8`)."""
    flags = {}
    for action in (parser._actions if parser is not None else ()):
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs:
            flags[action.dest] = longs[0]
    for key, value in vars(cfg).items():
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            check_utf8(item, flags.get(key, f"--{key}"))


def validate_config(cfg: argparse.Namespace) -> None:
    """Raise ValueError naming the first bad value and what is allowed."""
    _require(isinstance(cfg.epochs, int) and cfg.epochs > 0, f"--epochs must be a positive integer, got {cfg.epochs}")
    _require(isinstance(cfg.batch_size, int) and cfg.batch_size > 0,
             f"--batch_size must be a positive integer, got {cfg.batch_size}")
    check_number(cfg.lr, "--lr", low=0, low_open=True)
    check_number(cfg.weight_decay, "--weight_decay", low=0)
    check_number(cfg.momentum, "--momentum", low=0, high=1, high_open=True)
    check_number(cfg.lr_decay_rate, "--lr_decay_rate", low=0, low_open=True)
    check_seed(getattr(cfg, "seed", 0))
    _require(getattr(cfg, "input_norm", "dataset") in INPUT_NORMS,
             f"--input_norm must be one of {', '.join(INPUT_NORMS)}, got {getattr(cfg, 'input_norm', None)!r}")
    _require(0 <= getattr(cfg, "val_split", 0.0) < 1, f"--val_split must be in [0, 1), got {cfg.val_split}")
    _require(getattr(cfg, "num_workers", 0) >= 0, f"--num_workers must be >= 0, got {cfg.num_workers}")
    _require(cfg.print_freq > 0, f"--print_freq must be positive, got {cfg.print_freq}")
    _require(getattr(cfg, "threads", 0) >= 0, f"--threads must be >= 0, got {getattr(cfg, 'threads', 0)}")
    _require(getattr(cfg, "max_steps", 0) >= 0, f"--max_steps must be >= 0, got {getattr(cfg, 'max_steps', 0)}")
    _require(cfg.device in DEVICES, f"--device must be one of {DEVICES}, got {cfg.device!r}")
    _require(getattr(cfg, "augment", "standard") in AUGMENTS,
             f"--augment must be one of {', '.join(AUGMENTS)}, got {getattr(cfg, 'augment', None)!r}")
    if getattr(cfg, "init_s", None) and not os.path.isfile(cfg.init_s):
        raise FileNotFoundError(f"--init_s {cfg.init_s} not found; pass an existing checkpoint file")


def config_dict(cfg: argparse.Namespace) -> Dict[str, Any]:
    """The configuration as plain YAML/pickle-safe types."""
    return {k: plain(v) for k, v in sorted(vars(cfg).items())}


def write_config(cfg: argparse.Namespace, path: str) -> None:
    """Write the resolved configuration as YAML (atomically)."""
    write_yaml(path, config_dict(cfg), sort_keys=True)


def format_lr(value: float) -> str:
    """Run-folder spelling of a float as the official scripts print it (0.05, 0.0005)."""
    return repr(float(value)) if "e" not in repr(float(value)) else f"{value:.10f}".rstrip("0")


def teacher_run_name(arch: str, dataset: str, epochs: int, batch_size: int, lr: float, weight_decay: float,
                     trial: int) -> str:
    """``resnet56_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_1``: the official TopKD folder naming (its
    student command lines name their teachers so); the run folder appends the identity hash."""
    return (f"{arch}_{dataset}_epoch_{int(epochs)}_bs_{int(batch_size)}_lr_{format_lr(lr)}_"
            f"decay_{format_lr(weight_decay)}_trial_{trial}")

