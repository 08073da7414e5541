"""Networks from checkpoints: ours (``{'model', 'arch', 'num_classes', ...}``), the official TopKD / RepDistiller
ones (``{'model': state_dict, ...}`` or bare; the architecture from the caller or the run-folder name),
torchvision's weight files and TGD's releases (``{'model_state_dict', ...}``: our WRN blocks and ``feats[1:4]``,
only its key names differ, `TGD_KEY_RULES`)."""
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import nn

from topkd_io import TopKDError, load_checkpoint

from .pretrained import arch_from_torchvision_file
from .registry import ARCH_ALIASES, model_dict, resolve_arch
from .run_names import parse_checkpoint_path, resolve_teacher

# Entries of a state dict that hold the classifier, most specific first (the class count is its rows).
CLASSIFIER_KEYS = ("fc.weight", "linear.weight", "classifier.weight", "classifier.1.weight",
                   "classifier.0.weight")
_FILE_NAME = re.compile(r"^(?P<arch>.+)_(best|last)$")  # <arch>_best.pth / <arch>_last.pth
TGD_KEY_RULES = (  # (pattern, replacement) applied in order to every key
    (re.compile(r"^(block\d+)\.nblockLayer\.(\d+)\."), r"\1.layer.\2."),
    (re.compile(r"^(block\d+\.layer\.\d+)\.batch_norm([12])\."), r"\1.bn\2."),
    (re.compile(r"^(block\d+\.layer\.\d+)\.conv_inp\."), r"\1.convShortcut."),
    (re.compile(r"^batch_norm\."), "bn1."),
)


class LoadedModel(NamedTuple):
    """What `load_model` returns; unpacks as ``model, arch, ckpt = load_model(...)``."""

    model: nn.Module  # the network in eval mode
    arch: str  # the resolved architecture name (a key of ``models.model_dict``)
    ckpt: Dict[str, Any]  # the checkpoint dict as read


def is_tgd_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    return any(".nblockLayer." in k for k in state_dict)


def tgd_to_wrn_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """TGD WideResNet state dict -> the same tensors under ``models.wrn`` key names (order kept)."""
    out = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in TGD_KEY_RULES:
            new = pattern.sub(repl, new)
        if new in out:
            raise TopKDError(f"TGD key {key!r} maps onto {new!r} twice; not a TGD WideResNet state dict")
        out[new] = value
    return out


def tgd_wrn_arch(state_dict: Dict[str, torch.Tensor]) -> Tuple[str, Dict[str, int]]:
    """``(architecture name, options)`` of a TGD WideResNet state dict (either key naming), e.g.
    ``("wrn_16_1", {"num_classes": 10})``; ``in_channels`` is added when it is not 3 (the PI teacher)."""
    sd = tgd_to_wrn_state_dict(state_dict) if is_tgd_state_dict(state_dict) else state_dict
    try:
        blocks = {int(m.group(1)) for k in sd for m in [re.match(r"^block1\.layer\.(\d+)\.", k)] if m}
        width, in_channels = int(sd["block1.layer.0.conv1.weight"].shape[0]), int(sd["conv1.weight"].shape[1])
        options = {"num_classes": int(sd["fc.weight"].shape[0])}
    except KeyError as exc:
        raise TopKDError(f"not a WideResNet state dict (no {exc.args[0]!r})") from None
    if not blocks or width % 16:
        raise TopKDError(f"not a WideResNet state dict (block1 width {width}, {len(blocks)} blocks)")
    if in_channels != 3:
        options["in_channels"] = in_channels
    return f"wrn_{6 * len(blocks) + 4}_{width // 16}", options


def state_dict_differences(expected: Dict[str, torch.Tensor], found: Dict[str, torch.Tensor],
                           limit: int = 3) -> List[str]:
    """Human-readable differences of keys and shapes (the first ``limit`` of each kind)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {tuple(found[k].shape)} vs {tuple(expected[k].shape)}"
              for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    return [f"{label}: {', '.join(items[:limit])}{f' (+{len(items) - limit} more)' if len(items) > limit else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected),
                                 ("shape (checkpoint vs model)", shapes)) if items]


def check_finite_weights(state_dict: Dict[str, torch.Tensor], path: str, flag: str = "") -> None:
    """`TopKDError` naming ``path`` when a float tensor holds NaN or inf (every loss would be NaN at once)."""
    bad = [k for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise TopKDError(f"{flag + ' ' if flag else ''}checkpoint {path} holds NaN or infinite values in "
                         f"{', '.join(bad[:3])}{more}; it comes from a diverged or damaged run: use another checkpoint "
                         f"(e.g. an earlier <arch>_best.pth)")


def infer_num_classes(state_dict: Dict[str, torch.Tensor]) -> int:
    """Rows of the classifier weight (by name, else the last 2-D weight)."""
    for suffix in CLASSIFIER_KEYS:
        hits = [k for k in state_dict if k == suffix or k.endswith("." + suffix)]
        if hits:
            return int(state_dict[hits[-1]].shape[0])
    matrices = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    if not matrices:
        raise TopKDError("cannot infer the number of classes: no classifier weight in the checkpoint; "
                         "pass num_classes")
    return int(matrices[-1].shape[0])


def arch_candidates(path: str) -> List[str]:
    """Architecture names suggested by a checkpoint's file and folder names, most specific first."""
    run, match = parse_checkpoint_path(path), _FILE_NAME.match(os.path.splitext(os.path.basename(path))[0])
    out = [run.arch] if run is not None else []
    for name in (match.group("arch") if match else None, arch_from_torchvision_file(path)):
        if name and name not in out:
            out.append(name)
    return out


def _resolve_arch(path: str, ckpt: Dict[str, Any], arch: Optional[str]) -> str:
    stored = ckpt.get("arch") if isinstance(ckpt.get("arch"), str) else None
    if arch is not None:
        arch = resolve_arch(arch)  # official aliases (MobileNetV2, ShuffleV1, ...) -> registry name
        if stored is not None and stored != arch:
            raise TopKDError(f"checkpoint {path} holds a {stored}, but arch {arch} was requested")
        return arch
    if stored is not None:
        if stored not in model_dict:
            raise TopKDError(f"checkpoint {path} names an unknown architecture {stored!r}")
        return stored
    for name in arch_candidates(path):
        if name in model_dict or name in ARCH_ALIASES:
            return ARCH_ALIASES.get(name, name)
    raise TopKDError(f"cannot tell the architecture of {path} (no 'arch' entry, folder name not "
                     f"<arch>_<dataset>_lr_..._trial_N); pass the architecture explicitly (e.g. --model_t)")


def read_weights(path: str, map_location: Any = "cpu"):
    """-> ``(checkpoint dict, state dict in our key names)`` of ours, an official one, a bare state dict or TGD's
    releases (with ``arch``/``in_channels`` added for those); ``module.`` prefixes removed."""
    ckpt = load_checkpoint(path, map_location=map_location)
    sd = next((ckpt[k] for k in ("model_state_dict", "model") if isinstance(ckpt.get(k), dict)), ckpt)
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TopKDError(f"checkpoint {path} holds no network weights (expected {{'model': ...}}, "
                         f"{{'model_state_dict': ...}} or a state dict)")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if is_tgd_state_dict(sd):  # TGD's releases: its own WideResNet key names
        sd = tgd_to_wrn_state_dict(sd)
        tgd_arch, options = tgd_wrn_arch(sd)
        ckpt = dict(ckpt, arch=tgd_arch, in_channels=options.get("in_channels", 3))
    return ckpt, sd


def load_model(path: str, arch: Optional[str] = None, num_classes: Optional[int] = None,
               map_location: Any = "cpu", in_channels: Optional[int] = None) -> LoadedModel:
    """Rebuild a trained network from ours or an official checkpoint -> ``LoadedModel(model in eval mode, arch,
    ckpt)``. ``arch``: given, else stored, else read from the run-folder / file name; ``num_classes`` and
    ``in_channels``, when given, must match the checkpoint's (`TopKDError` naming what differs)."""
    ckpt, sd = read_weights(path, map_location)
    check_finite_weights(sd, path)
    arch = _resolve_arch(path, ckpt, arch)
    found_classes = int(ckpt["num_classes"]) if isinstance(ckpt.get("num_classes"), int) else infer_num_classes(sd)
    if num_classes is not None and int(num_classes) != found_classes:
        raise TopKDError(f"checkpoint {path} has {found_classes} classes but {num_classes} were requested "
                         f"(different data set?)")
    found_channels = ckpt["in_channels"] if isinstance(ckpt.get("in_channels"), int) else 3
    if in_channels is not None and int(in_channels) != found_channels:
        pi = " (a teacher trained on persistence images, train_teacher.py --input pi?)" \
            if found_channels == 2 * int(in_channels) else ""
        raise TopKDError(f"checkpoint {path} takes {found_channels}-channel inputs but the data have {in_channels} "
                         f"channels{pi}; pass a network trained on this data")
    options = {"in_channels": found_channels} if found_channels != 3 else {}
    model = model_dict[arch](num_classes=found_classes, **options)
    diffs = state_dict_differences(model.state_dict(), sd)
    if diffs:
        raise TopKDError(f"checkpoint {path} does not fit {arch} with {found_classes} classes "
                         f"(another architecture?): {'; '.join(diffs)}")
    model.load_state_dict(sd, strict=True)
    return LoadedModel(model.eval(), arch, ckpt)


def init_from_checkpoint(model: nn.Module, path: Optional[str]) -> nn.Module:
    """``--init_s``: the weights of checkpoint ``path`` (any kind `load_model` reads) copied into ``model``,
    strictly (every key and shape must match); the optimizer, epoch and schedule start fresh (as the official
    TGD ``--student_checkpoint``). ``path`` None or empty does nothing."""
    if not path:
        return model
    sd = read_weights(str(path))[1]
    check_finite_weights(sd, str(path), "--init_s")
    diffs = state_dict_differences(model.state_dict(), sd)
    if diffs:
        raise TopKDError(f"--init_s {path} does not fit the {type(model).__name__} being trained "
                         f"(another architecture or class count?): {'; '.join(diffs)}")
    model.load_state_dict(sd, strict=True)
    return model


def teacher_and_arch(path_t: Optional[str], model_t: Optional[str], dataset: Optional[str], trial: Optional[int],
                     plan: bool = False) -> Tuple[Optional[str], Optional[str]]:
    """`run_names.resolve_teacher`, then the architecture read from the checkpoint -> ``(path, arch)``. Under
    ``--plan`` a teacher that does not exist yet is left as given when both its path and architecture are."""
    try:
        path_t = resolve_teacher(path_t, model_t, dataset, trial)
    except (FileNotFoundError, TopKDError):
        if not (plan and path_t and model_t):
            raise
    if os.path.isfile(path_t):
        model_t = _resolve_arch(path_t, read_weights(path_t)[0], model_t)
    return path_t, model_t
