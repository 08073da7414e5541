"""Name -> builder registry, what each data set declares about itself (`DatasetInfo`), and the one entry
point, `build_datasets`."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from topkd_io import TopKDError

from .bundle import DataBundle
from .fingerprint import Fingerprint
from .splits import check_val_split

# name -> function(root, download, val_split, seed, **options) -> DataBundle
DATASET_BUILDERS: Dict[str, Callable[..., DataBundle]] = {}


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set declares when it registers: ``recipe``, the hyper-parameter recipe of its runs (a name of
    ``engine.config.RECIPES``); ``fingerprint``, ``(root, download) -> hex digest`` of the data a run reads (part
    of its identity; `datasets.fingerprint`); ``on_device``, its images are in memory (``--data_on_device``)."""

    name: str
    recipe: str
    fingerprint: Fingerprint
    on_device: bool = False


DATASET_INFO: Dict[str, DatasetInfo] = {}

_COMMON = ("root", "download", "val_split", "seed")


def register(name: str, *, recipe: str, fingerprint: Fingerprint, on_device: bool = False
             ) -> Callable[[Callable], Callable]:
    """Function decorator: ``@register("imagenet", recipe="imagenet", fingerprint=image_tree("train", "val"))``
    makes a builder available by name, with its `DatasetInfo`."""

    def wrap(fn: Callable) -> Callable:
        if name in DATASET_BUILDERS:
            raise ValueError(f"data set name {name!r} registered twice")
        DATASET_BUILDERS[name] = fn
        DATASET_INFO[name] = DatasetInfo(name=name, recipe=str(recipe), fingerprint=fingerprint,
                                         on_device=bool(on_device))
        return fn

    return wrap


def dataset_names() -> List[str]:
    """The names `build_datasets` accepts, sorted."""
    return sorted(DATASET_BUILDERS)


def dataset_info(name: str) -> DatasetInfo:
    """The `DatasetInfo` of a registered data set; ValueError naming the choices for unknown names."""
    try:
        return DATASET_INFO[name]
    except (KeyError, TypeError):
        raise TopKDError(f"unknown data set {name!r}; choose one of: {', '.join(dataset_names())}") from None


def data_fingerprint(name: str, root: str, download: bool = False, must_exist: bool = True) -> Optional[str]:
    """The fingerprint of the data set ``name`` at ``root`` (its declared `DatasetInfo.fingerprint`); when the
    data are not there: FileNotFoundError saying what is missing, or None unless ``must_exist``."""
    try:
        return dataset_info(name).fingerprint(str(root), bool(download))
    except FileNotFoundError:
        if must_exist:
            raise
        return None


def _options_of(fn: Callable) -> List[str]:
    return [p for p in inspect.signature(fn).parameters if p not in _COMMON]


def builder_options(name: str) -> List[str]:
    """The per-data-set keyword options the builder of ``name`` takes ([] for an unknown name)."""
    builder = DATASET_BUILDERS.get(name) if isinstance(name, str) else None
    return _options_of(builder) if builder is not None else []


def builder_default(name: str, option: str):
    """The default value of the keyword ``option`` of the builder of ``name`` (None when it has none)."""
    builder = DATASET_BUILDERS.get(name) if isinstance(name, str) else None
    param = inspect.signature(builder).parameters.get(option) if builder is not None else None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def build_datasets(name: str, root: str = "./data", download: bool = False, val_split: float = 0.0,
                   seed: int = 0, **options) -> DataBundle:
    """The train/(val)/test sets of data set ``name`` (one of `dataset_names()`) under ``root``; ``val_split``: the
    fraction of the training data held out as ``val`` (eval transforms, given ``seed``); ``options``: the data
    set's own keywords (e.g. ``train_augment``, ``image_size``)."""
    builder = DATASET_BUILDERS[dataset_info(name).name]
    val_split = check_val_split(val_split)
    allowed = _options_of(builder)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TopKDError(
            f"unknown option(s) {', '.join(unknown)} for data set {name!r}; "
            f"valid: {', '.join(allowed) or 'none'}"
        )
    return builder(root=str(root), download=bool(download), val_split=val_split, seed=int(seed), **options)
