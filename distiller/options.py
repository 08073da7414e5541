"""Command-line options, declared by the classes that own them (the methods and TopKD's topology term): a tuple
``options`` (its bases' inherited) and their ``defaults`` for the class. ``train_student.py`` adds every option once
to its parser (an option several classes declare is one shared `Option`, as `KD_T`), parsed to None ("not given");
`resolve` fills in the owner's defaults and checks each value once: its range, then the owner's
``check_options(values) -> values`` (rules between options, e.g. the topology term's ``--TDA``)."""
import argparse
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from topkd_io import TopKDError, check_number


@dataclass(frozen=True)
class Option:
    """One option: ``name`` is the config key and the constructor keyword; ``flags`` its spellings (official
    aliases included); ``type`` parses one word (default: the type of a numeric default)."""

    name: str
    default: Any
    help: str
    type: Optional[Callable[[str], Any]] = None
    flags: Tuple[str, ...] = ()  # default ("--<name>",)
    source: str = ""  # where the default comes from (paper, official code)
    choices: Optional[Tuple[Any, ...]] = None
    nargs: Any = None
    metavar: Optional[str] = None
    # the range of a numeric value (NaN and infinities always refused); *_open: the bound itself excluded
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    free: bool = False  # a path of an input a resumed run may change (not compared with the checkpoint's)
    result: bool = True  # changes the result: in the run's identity (a free input path never is: its file is)

    def spellings(self) -> Tuple[str, ...]:
        return tuple(self.flags) or (f"--{self.name}",)

    def check(self, value: Any) -> None:
        flag = "/".join(self.spellings())
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                check_number(item, flag, self.low, self.low_open, self.high, self.high_open)

    def add_to(self, group, default_text: str) -> None:
        if self.type is None and isinstance(self.default, bool):
            raise TypeError(f"option {self.name}: a bool default needs an explicit type (e.g. str2bool)")
        numeric = isinstance(self.default, (int, float)) and self.type is None
        note = "; ".join(t for t in ((f"default: {default_text}" if default_text != "None" else ""), self.source) if t)
        kwargs = dict(dest=self.name, default=None, type=type(self.default) if numeric else self.type,
                      help=(f"{self.help} ({note})" if note else self.help).replace("%", "%%"))
        for key in ("choices", "nargs", "metavar"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        action = group.add_argument(*self.spellings(), **kwargs)
        action.result = self.result and not self.free  # read by engine.record.identity_of


def str2bool(text: str) -> bool:
    """``True/true/1/yes`` -> True, ``False/false/0/no`` -> False (for official ``--FLAG True`` options)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


# Loss weights with RepDistiller's meaning, shared by every teacher -> student method:
# loss = gamma * CE + alpha * KD + beta * <the method's own term>.
GAMMA = Option("gamma", 1.0, "weight of the cross-entropy term", flags=("-r", "--gamma"),
               source="official TopKD and RepDistiller default: 1", low=0.0)
ALPHA = Option("alpha", 0.0, "weight of the KD term", flags=("-a", "--alpha"),
               source="official parsers: no default, every script passes it", low=0.0)
BETA = Option("beta", 0.0, "weight of the method's own term", flags=("-b", "--beta"),
              source="official parsers: no default, every script passes it", low=0.0)
KD_T = Option("kd_T", 4.0, "softmax temperature of the KD terms", source="Hinton et al.; RepDistiller", low=0.0,
              low_open=True)
LOSS_WEIGHTS = (GAMMA, ALPHA, BETA, KD_T)


def declared(owner: type) -> Tuple[Option, ...]:
    """Options of a class, its bases' first."""
    out: Dict[str, Option] = {}
    for klass in reversed(owner.__mro__):
        for opt in vars(klass).get("options", ()):
            out[opt.name] = opt
    return tuple(out.values())


def default_of(owner, opt: Option) -> Any:
    return dict(getattr(owner, "defaults", None) or {}).get(opt.name, opt.default)


def resolve(owner, cfg: argparse.Namespace) -> Dict[str, Any]:
    """``{option name: value}`` for every option ``owner`` declares: the given value, else its default, checked
    (`TopKDError` naming the flag). Resolving resolved values again changes nothing."""
    out = {}
    for opt in declared(owner):
        value = getattr(cfg, opt.name, None)
        out[opt.name] = default_of(owner, opt) if value is None else value
        opt.check(out[opt.name])  # finite and in the option's declared range, whichever method declares it
    rules = getattr(owner, "check_options", None)
    return rules(out) if rules else out


def collect(owners: Iterable[Tuple[str, Any]]) -> Dict[str, Tuple[Option, List[Tuple[str, Any]]]]:
    """``name -> (option, [(owner name, its default), ...])`` over ``(name, class)`` pairs; ValueError (a bug in
    the classes) when two owners declare different options under one name or one flag."""
    table: Dict[str, Tuple[Option, List[Tuple[str, Any]]]] = {}
    flag_owner: Dict[str, str] = {}
    for owner_name, owner in owners:
        for opt in declared(owner):
            if opt.name in table and table[opt.name][0] != opt:
                raise ValueError(f"option {opt.name!r} is declared differently by {owner_name} and "
                                 f"{table[opt.name][1][0][0]}; share one Option object")
            for flag in opt.spellings():
                if flag_owner.setdefault(flag, opt.name) != opt.name:
                    raise ValueError(f"flag {flag} of {owner_name}'s option {opt.name!r} is already taken by "
                                     f"option {flag_owner[flag]!r}")
            entry = table.setdefault(opt.name, (opt, []))
            entry[1].append((owner_name, default_of(owner, opt)))
    return table


def default_text(owners: Sequence[Tuple[str, Any]]) -> str:
    """``"0.9"`` when every owner agrees, else ``"kd 0.9, dkd 0.0, ..."`` (owners grouped by value)."""
    groups: Dict[str, List[str]] = {}
    for name, value in owners:
        groups.setdefault(value if isinstance(value, str) else repr(value), []).append(name)
    return next(iter(groups)) if len(groups) == 1 else ", ".join(f"{'/'.join(n)} {v}" for v, n in groups.items())


def check_undeclared(cfg: argparse.Namespace, table: Dict[str, Tuple[Option, list]], allowed: Iterable[str],
                     method: str) -> None:
    allowed = set(allowed)
    for name, (opt, owners) in table.items():
        if name not in allowed and getattr(cfg, name, None) is not None:
            others = ", ".join(sorted({o for o, _ in owners}))
            raise TopKDError(f"{'/'.join(opt.spellings())} is not an option of --distill {method} (it belongs to: "
                             f"{others}); drop it or pick a method that takes it")
