"""Stage 4: distil a teacher into a student, optionally with TopKD's topology term.

    python train_student.py --path_t save_t_models/resnet56_cifar100_lr_0.05_decay_0.0005_trial_0/resnet56_best.pth \
        --model_s resnet20 --distill kd -r 1 -a 2 -d 5 --rips_path ripsnet/<run>/mean_best.pth

Loss: ``gamma * CE + alpha * KD + beta * <method term> + delta * TDA`` (each term logged separately).
``-r/-a/-b`` left out take the method's defaults (see ``distiller``); ``-d 0`` (default) = no topology
term. ``--method topkd`` uses the frozen RipsNet of ``--rips_path`` (a checkpoint file, or a folder holding
``<operator>_best.pth``); ``--method topkd_exact`` the exact differentiable H0 persistence images with the
parameters of ``--pi_params`` (the stage-2 folder or its ``manifest.yaml``) or of the RipsNet checkpoint.
Run folder: <save_dir>/S-<s>_T-<t>_<dataset>_<distill>[+<method>]_r-<g>_a-<a>_b-<b>_d-<d>_trial_<n>/.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from typing import Any, Dict, Optional, Sequence

from engine.cli import run_cli
from engine.config import add_data_args, add_training_args, parse_config
from engine.seed import seed_everything
from engine.trainer import fit_and_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Distil a teacher into a student (KD, FitNet, ..., TopKD).")
    g = parser.add_argument_group("networks")
    g.add_argument("--model_s", default="resnet8", help="student architecture (models.model_dict)")
    g.add_argument("--path_t", default=None, help="teacher checkpoint (ours or official {'model': ...})")
    g.add_argument("--model_t", default=None, help="teacher architecture when the checkpoint does not name it")
    g = parser.add_argument_group("distillation")
    g.add_argument("--distill", default="kd", help="method: kd, hint/fitnet, attention/at, similarity/sp, rkd, "
                                                   "pkt, crd, dkd, tgd")
    g.add_argument("--kd_T", type=float, default=4.0, help="temperature of KD (and DKD)")
    g.add_argument("-r", "--gamma", type=float, default=None, help="weight of cross-entropy (default: method's)")
    g.add_argument("-a", "--alpha", type=float, default=None, help="weight of KD (default: method's)")
    g.add_argument("-b", "--beta", type=float, default=None, help="weight of the method's own term (default: method's)")
    g.add_argument("--hint_layer", type=int, default=2, help="FitNet: feature index of the hint")
    g.add_argument("--feat_dim", type=int, default=128, help="CRD embedding width")
    g.add_argument("--nce_k", type=int, default=16384, help="CRD negatives per sample")
    g.add_argument("--nce_t", type=float, default=0.07, help="CRD temperature")
    g.add_argument("--nce_m", type=float, default=0.5, help="CRD memory momentum")
    g.add_argument("--mode", "--crd_mode", dest="crd_mode", default="exact", choices=("exact", "relax"),
                   help="CRD positive: the sample itself (exact) or a random sample of its class (relax)")
    g.add_argument("--dkd_alpha", type=float, default=1.0, help="DKD target-class weight")
    g.add_argument("--dkd_beta", type=float, default=8.0, help="DKD non-target-class weight")
    g.add_argument("--dkd_warmup", type=int, default=20, help="DKD linear warm-up epochs")
    g = parser.add_argument_group("topology (TopKD)")
    g.add_argument("-d", "--delta", type=float, default=0.0, help="weight of the topology term (0 = off)")
    g.add_argument("--method", default="topkd", choices=("topkd", "topkd_exact"),
                   help="persistence images by the frozen RipsNet (topkd) or exactly (topkd_exact)")
    g.add_argument("--tda_layer_t", type=int, default=-1, help="teacher feature index (-1 = FC input)")
    g.add_argument("--tda_layer_s", type=int, default=None, help="student feature index (default: --tda_layer_t)")
    g.add_argument("--tda_clouds", type=int, default=1, help="point clouds per batch (1 = the whole batch)")
    g.add_argument("--dim", type=int, default=0, help="homology dimension matched (only 0 is supported)")
    g.add_argument("--operator", default=None, choices=("mean", "sum"),
                   help="RipsNet pooling; picks <operator>_best.pth when --rips_path is a folder")
    g.add_argument("--rips_path", default=None, help="RipsNet checkpoint file or folder (stage 3)")
    g.add_argument("--pi_params", default=None, help="stage-2 folder (or its manifest.yaml) whose PI parameters topkd_exact uses")
    g = parser.add_argument_group("TGD (--distill tgd): two teachers, images and their persistence images")
    g.add_argument("--path_t2", default=None, help="persistence-image teacher checkpoint (train_teacher.py --input pi)")
    g.add_argument("--model_t2", default=None, help="its architecture when the checkpoint does not name it")
    g.add_argument("--pi_root", default="./data/image_pi", help="image-PI cache written by generate_image_PI.py")
    g.add_argument("--tgd_alpha", type=float, default=0.99, help="weight a of the image teacher (1-a: PI teacher)")
    g.add_argument("--tgd_sim_weight", type=float, default=1000.0, help="weight of the Gram-similarity term")
    g.add_argument("--tgd_kl", default="mean", choices=("mean", "batchmean"),
                   help="KL scale: 'mean' divides by batch x classes (TGD's code), 'batchmean' by batch")
    add_data_args(parser)
    add_training_args(parser, save_dir="./save_s_models")
    return parser


def student_run_name(cfg, distiller) -> str:
    topo = f"+{cfg.method}" if cfg.delta else ""
    return (f"S-{cfg.model_s}_T-{cfg.model_t}_{cfg.dataset}_{cfg.distill}{topo}_r-{distiller.gamma}_"
            f"a-{distiller.alpha}_b-{distiller.beta}_d-{float(cfg.delta)}_trial_{cfg.trial}")


def resolve_rips_path(path: str, operator: Optional[str]) -> str:
    """A checkpoint file, or a folder holding ``<operator>_best.pth`` -> the file path."""
    if os.path.isdir(path):
        names = [f"{operator}_best.pth"] if operator else ["mean_best.pth", "sum_best.pth"]
        found = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        if len(found) != 1:
            raise FileNotFoundError(f"--rips_path folder {path} holds {'none' if not found else 'several'} of "
                                    f"{', '.join(names)}; pass the checkpoint file or --operator")
        return found[0]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--rips_path {path} does not exist; pass the stage-3 RipsNet checkpoint")
    return path


def load_topology_inputs(cfg):
    """-> ``(ripsnet or None, PIParams or None)`` for the topology term as the flags ask."""
    from pcd.manifest import read_pi_params
    from topology.images import PIParams

    rips, params = None, None
    if cfg.rips_path:
        from topology.ripsnet import load_ripsnet

        rips, ckpt = load_ripsnet(resolve_rips_path(cfg.rips_path, cfg.operator))
        params = ckpt["pi_params"]  # None in official checkpoints
        if cfg.operator and rips.pooling != cfg.operator:
            raise ValueError(f"--operator {cfg.operator} but the RipsNet at {cfg.rips_path} pools by {rips.pooling}; "
                             f"drop --operator or pass the matching checkpoint")
    if cfg.pi_params:
        params = read_pi_params(cfg.pi_params, cfg.dim)
    elif params is not None:
        params = PIParams.from_dict(params)
    return rips, params


def check_flags(cfg, names) -> None:
    if cfg.path_t is None:
        raise ValueError("--path_t is required: the teacher checkpoint from train_teacher.py")
    if cfg.distill == "tgd":
        if cfg.path_t2 is None:
            raise ValueError("--distill tgd needs --path_t2, the persistence-image teacher "
                             "(train_teacher.py --input pi)")
        if cfg.delta:
            raise ValueError("--delta (TopKD's term) does not combine with --distill tgd")
        return
    if cfg.distill not in names:
        raise ValueError(f"unknown --distill {cfg.distill!r}; choose one of: {', '.join(sorted(set(names) | {'tgd'}))}")
    if cfg.dim != 0:
        raise ValueError(f"--dim {cfg.dim}: only H0 (--dim 0) is supported, as in the paper's RipsNets")
    if cfg.delta < 0:
        raise ValueError(f"--delta must be >= 0, got {cfg.delta}")
    if cfg.delta and cfg.method == "topkd" and not cfg.rips_path:
        raise ValueError("--delta > 0 with --method topkd needs --rips_path (the stage-3 RipsNet checkpoint); "
                         "or use --method topkd_exact with --pi_params")
    if cfg.delta and cfg.method == "topkd_exact" and not (cfg.pi_params or cfg.rips_path):
        raise ValueError("--method topkd_exact needs --pi_params (the stage-2 folder or its manifest.yaml) or a --rips_path "
                         "checkpoint that carries them")


def method_names():
    from distiller import distiller_dict
    from distiller.teacher_student import TeacherStudent

    return {n for n, cls in distiller_dict.items() if issubclass(cls, TeacherStudent)}


def build_tgd(cfg, data, student, teacher):
    """TGD's distiller and the data carrying each image's cached PI: ``(distiller, data)``."""
    from datasets.pi_images import attach_image_pis
    from distiller.tgd import TGD
    from engine.checkpoint import load_model

    teacher2, ckpt_t2 = load_model(cfg.path_t2, arch=cfg.model_t2, num_classes=data.num_classes)
    cfg.model_t2 = cfg.model_t2 or ckpt_t2.get("arch") or type(teacher2).__name__
    data = attach_image_pis(data, cfg.pi_root)
    gamma = 0.1 if cfg.gamma is None else cfg.gamma
    alpha = 0.9 if cfg.alpha is None else cfg.alpha
    distiller = TGD(student, teacher, teacher2=teacher2, temperature=cfg.kd_T, alpha=cfg.tgd_alpha,
                    ce_weight=gamma, kd_weight=alpha, sim_weight=cfg.tgd_sim_weight, kl_reduction=cfg.tgd_kl)
    distiller.gamma, distiller.alpha, distiller.beta = gamma, alpha, cfg.tgd_sim_weight
    return distiller, data


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    cfg = parse_config(build_parser(), argv, arch_key="model_s")
    from datasets import build_datasets
    from datasets.contrast import ContrastSample
    from distiller import attach_topology, get_distiller
    from engine.checkpoint import load_model
    from train_teacher import build_network

    check_flags(cfg, method_names())
    seed_everything(cfg.seed, cfg.deterministic)
    options = {"image_size": cfg.image_size} if cfg.image_size else {}
    data = build_datasets(cfg.dataset, cfg.data_root, download=cfg.download, val_split=cfg.val_split,
                          seed=cfg.seed, **options)
    image_size = int(data.image_size)
    teacher, ckpt_t = load_model(cfg.path_t, arch=cfg.model_t, num_classes=data.num_classes)
    cfg.model_t = cfg.model_t or ckpt_t.get("arch") or type(teacher).__name__
    student = build_network(cfg.model_s, data.num_classes, data.in_channels)
    per_epoch = len(data.train) // cfg.batch_size + (len(data.train) % cfg.batch_size > 1)
    if cfg.distill == "tgd":
        distiller, data = build_tgd(cfg, data, student, teacher)
    else:
        method = get_distiller(cfg.distill)
        num_data = len(data.train)
        if getattr(method, "samples_negatives", False):  # CRD: class-aware negatives from the loader
            data = dataclasses.replace(data, train=ContrastSample(data.train, cfg.nce_k, cfg.crd_mode))
            num_data = data.train.index_space
        distiller = method(
            student, teacher, gamma=cfg.gamma, alpha=cfg.alpha, beta=cfg.beta, kd_T=cfg.kd_T,
            in_channels=data.in_channels, image_size=image_size, steps_per_epoch=max(per_epoch, 1),
            hint_layer=cfg.hint_layer, num_data=num_data, feat_dim=cfg.feat_dim, nce_k=cfg.nce_k,
            nce_t=cfg.nce_t, nce_m=cfg.nce_m, dkd_alpha=cfg.dkd_alpha, dkd_beta=cfg.dkd_beta,
            dkd_warmup=cfg.dkd_warmup)
    if cfg.delta:
        rips, params = load_topology_inputs(cfg)
        attach_topology(distiller, cfg.delta, method=cfg.method, rips=rips, pi_params=params,
                        tda_layer_t=cfg.tda_layer_t, tda_layer_s=cfg.tda_layer_s, tda_clouds=cfg.tda_clouds)
    cfg.gamma, cfg.alpha, cfg.beta = distiller.gamma, distiller.alpha, distiller.beta
    cfg.arch, cfg.num_classes, cfg.in_channels = cfg.model_s, data.num_classes, data.in_channels
    cfg.run_dir = cfg.run_dir or os.path.join(cfg.save_dir, student_run_name(cfg, distiller))
    return fit_and_report(distiller, data, cfg)


if __name__ == "__main__":
    run_cli(main)
