"""Evaluate any classifier checkpoint (``evaluate.py``): top-1, top-5, mean cross-entropy and per-class top-1,
on the inputs rebuilt as the checkpoint's run recorded them (its ``config``) unless the options say otherwise.
A result is stored as ``eval_<stem>-<sha8>_<dataset>_<split>.yaml``: never over another one's.
"""
import argparse
import glob
import os
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datasets import build_datasets
from datasets.pi_images import PI_RECIPE, pi_bundle
from models import load_model
from models.loading import infer_num_classes
from topkd_io import TopKDError, file_sha256, read_yaml, write_yaml

from .config import RECIPES, recorded_data_options
from .record import git_state, read_stored_identity, versions
from .topo_eval import measure_checkpoints
from .trainer import pick_device, topk_correct

SPLITS = ("test", "val")


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader: DataLoader, num_classes: int,
                   device: torch.device) -> Dict[str, Any]:
    """-> ``{"n", "top1", "top5", "loss", "per_class"}`` (per_class: None for a class with no image)."""
    model.eval().to(device)
    loss, c1, c5, n = 0.0, 0, 0, 0
    hits, seen = torch.zeros(num_classes, dtype=torch.long), torch.zeros(num_classes, dtype=torch.long)
    for batch in loader:
        image, target = (batch["image"], batch["target"]) if isinstance(batch, dict) else batch[:2]
        image, target = image.to(device), target.to(device)
        logits = model(image).float()
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        k1, k5 = topk_correct(logits, target, ks=(1, 5))
        c1, c5, n = c1 + k1, c5 + k5, n + len(target)
        t = target.cpu()
        seen += torch.bincount(t, minlength=num_classes)
        hits += torch.bincount(t[(logits.argmax(1) == target).cpu()], minlength=num_classes)
    n_ = max(n, 1)
    per_class = [None if int(s) == 0 else round(100.0 * int(h) / int(s), 4) for h, s in zip(hits, seen)]
    return {"n": n, "top1": 100.0 * c1 / n_, "top5": 100.0 * c5 / n_, "loss": loss / n_, "per_class": per_class}


def eval_data(options: argparse.Namespace, cfg: Dict[str, Any], num_classes: int):
    """-> ``(dataset name, the split to evaluate on, its class count)``, built as the run recorded (``cfg``)
    unless the options say otherwise."""
    dataset = options.dataset or cfg.get("dataset") or "cifar100"
    val_fraction = options.val_fraction if options.val_fraction is not None else \
        float(cfg.get("val_fraction") or 0.0)
    if options.split == "val" and not val_fraction:
        raise TopKDError("--split val needs a validation part of the training set: the run recorded none; pass "
                         "--val_fraction as the run was trained, or use --split test")
    if (options.input or cfg.get("input")) == "pi":
        pi_root, pi_cache = options.pi_root, getattr(options, "pi_cache", None)
        if not (pi_root or pi_cache):  # the run's own cache
            pi_root, pi_cache = cfg.get("pi_root") or "./data/image_pi", cfg.get("pi_cache")
        data = pi_bundle(pi_root, dataset, num_classes, val_fraction=val_fraction, pi_cache=pi_cache,
                         verify=not cfg.get("no_verify"),
                         input_norm=cfg.get("input_norm") or RECIPES[PI_RECIPE]["input_norm"])
    else:
        data = build_datasets(dataset, options.data_root or cfg.get("data_root") or "./data", download=False,
                              val_fraction=val_fraction,
                              **recorded_data_options(cfg, dataset, image_size=options.image_size))
    return dataset, data.val if options.split == "val" else data.test, data.num_classes


def evaluate_checkpoint(options: argparse.Namespace) -> Dict[str, Any]:
    """Evaluate ``options.checkpoint`` as asked (``evaluate.py``'s options) -> the result dict."""
    path = options.checkpoint
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} not found; pass a .pth file")
    model, arch, ckpt = load_model(path, arch=options.model)
    cfg = dict(ckpt["config"]) if isinstance(ckpt.get("config"), dict) else {}
    num_classes = int(ckpt.get("num_classes") or infer_num_classes(model.state_dict()))
    dataset, split, data_classes = eval_data(options, cfg, num_classes)
    if data_classes != num_classes:
        raise TopKDError(f"checkpoint {path} has {num_classes} classes but {dataset} has {data_classes}; pass the "
                         f"data set it was trained on (--dataset)")
    device = pick_device(options.device)
    loader = DataLoader(split, batch_size=int(options.batch_size or cfg.get("batch_size") or 256), shuffle=False,
                        num_workers=int(options.num_workers))
    result: Dict[str, Any] = {"checkpoint": os.path.abspath(path), "sha256": file_sha256(path), "arch": arch,
                              "dataset": dataset, "split": options.split,
                              **evaluate_model(model, loader, num_classes, device)}
    for key in ("best_acc", "last_acc", "accuracy", "epoch"):
        if isinstance(ckpt.get(key), (int, float)) or hasattr(ckpt.get(key), "item"):
            result[f"recorded_{key}"] = float(ckpt[key])
    if options.path_t:  # the probe every student run applies, at the layers of the run's topology term
        layer_t = cfg.get("tda_layer_t")
        out = measure_checkpoints(options.path_t, path, dataset=dataset,
                                  data_root=options.data_root or cfg.get("data_root") or "./data",
                                  image_size=options.image_size or cfg.get("image_size"),
                                  layer_t=-1 if layer_t is None else int(layer_t), layer_s=cfg.get("tda_layer_s"),
                                  device=str(device), model_t=options.model_t, model_s=arch)
        result["topology"] = {"metrics": out["metrics"], "settings": out["settings"]}
    return result


def result_path(result: Dict[str, Any], folder: Optional[str] = None) -> str:
    """``<folder>/eval_<stem>-<sha8>_<dataset>_<split>.yaml``; folder: the checkpoint's by default."""
    here, name = os.path.split(result["checkpoint"])
    name = f"eval_{os.path.splitext(name)[0]}-{result['sha256'][:8]}_{result['dataset']}_{result['split']}.yaml"
    return os.path.join(folder or here, name)


def default_out(result: Dict[str, Any]) -> Optional[str]:
    """Where a result goes without ``--out``: beside the checkpoint in one of our run folders (its config.yaml
    records an identity), else nowhere (a downloaded release folder is left as it is)."""
    folder = os.path.dirname(result["checkpoint"])
    return result_path(result) if read_stored_identity(os.path.join(folder, "config.yaml")) else None


def write_result(result: Dict[str, Any], out: Optional[str] = None) -> str:
    """Write ``result`` as YAML (``out``: a file, or a folder to hold `result_path`'s name) -> the path. An existing
    file is replaced only when it holds the result of the same checkpoint, data set and split."""
    path = result_path(result, out) if out and os.path.isdir(out) else out or result_path(result)
    if os.path.isfile(path):
        try:
            old = read_yaml(path, "evaluation result") or {}
        except ValueError:
            old = {}
        if not isinstance(old, dict) or any(old.get(k) != result[k] for k in ("sha256", "dataset", "split")):
            raise TopKDError(f"{path} holds another evaluation (other checkpoint, data set or split); pass another "
                             f"--out")
    write_yaml(path, {**result, "code": {**git_state(), "versions": versions()}})
    return path


def find_results(checkpoint: str) -> List[Dict[str, Any]]:
    """The stored test-split evaluations of ``checkpoint`` (its current contents: matched by SHA-256) beside it."""
    folder, name = os.path.split(os.path.abspath(checkpoint))
    try:
        sha = file_sha256(checkpoint)
    except OSError:
        return []
    stem = glob.escape(os.path.splitext(name)[0])
    pattern = os.path.join(glob.escape(folder), f"eval_{stem}-{sha[:8]}_*_test.yaml")
    out = []
    for path in sorted(glob.glob(pattern)):
        try:
            data = read_yaml(path, "evaluation result")
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("sha256") == sha:
            out.append(data)
    return out


def summary_line(result: Dict[str, Any], path: Optional[str], saved: bool = True) -> str:
    """One line: the checkpoint, the data, top-1/top-5/loss, and where the YAML went (``saved`` False: it was
    not written, as `default_out` decided)."""
    text = (f"{os.path.basename(result['checkpoint'])} ({result['arch']}, sha256 {result['sha256'][:8]}) on "
            f"{result['dataset']} {result['split']} ({result['n']} images): top-1 {result['top1']:.2f}, top-5 "
            f"{result['top5']:.2f}, loss {result['loss']:.4f}")
    if "recorded_best_acc" in result:
        text += f" (its checkpoint records best top-1 {result['recorded_best_acc']:.2f})"
    if not saved:
        text += " (not written: its folder is not a run folder of ours; --out FILE or FOLDER writes it)"
    return text + (f" -> {path}" if path else "")
