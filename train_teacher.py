"""Stage 1: train a teacher with plain cross-entropy (the `vanilla` distiller) on one data set.

    python train_teacher.py --model resnet56 --dataset cifar100 --data_root ./data

Run folder (default): <save_dir>/<arch>_<dataset>_epoch_<E>_bs_<B>_lr_<lr>_decay_<wd>_trial_<n>-<hash>/ (the
official TopKD naming plus the run's identity hash, `engine.record`). Hyper-parameters follow the data set's
recipe (`engine.config.RECIPES`; TGD's for ``--input pi``) unless flags or a --config YAML file say otherwise.
"""
import argparse
import logging
import os
from typing import Any, Dict, Optional, Sequence

from topkd_io import run_cli
from engine.config import StageParser, add_data_args, add_training_args, data_options, parse_config, teacher_run_name
from engine.record import option, plan_training
from engine.stage import setup_stage
from engine.trainer import fit

log = logging.getLogger("train_teacher")  # by name: run as a script, __name__ is "__main__"


def build_parser() -> argparse.ArgumentParser:
    from datasets.pi_images import PI_RECIPE  # the recipe the persistence-image data declares (TGD's)

    parser = StageParser(description="Train a teacher network with cross-entropy.",
                         recipe_rules=[lambda options: PI_RECIPE if options.get("input") == "pi" else None])
    parser.add_argument("--model", default="resnet56", help="architecture (models.model_dict; official names too)")
    parser.add_argument("--input", default="image", choices=("image", "pi"),
                        help="train on the images, or on their cached persistence images (TGD's PI teacher)")
    option(parser, "--pi_root", default="./data/image_pi", result=False,  # the caches count by content
           help="with --input pi: the cache root of generate_image_PI.py (<pi_root>/<dataset>_<split>)")
    option(parser, "--pi_cache", default=None, result=False,
           help="with --input pi: an image-PI cache taken with the parameters its manifest records (a split "
                "folder <out>/<name>_train, or a root holding <dataset>_train/_test); replaces --pi_root")
    add_data_args(parser)
    add_training_args(parser, save_dir="./save_t_models")
    return parser


def build_data(cfg):
    """The DataBundle this teacher trains on: images, or (``--input pi``) their cached PIs."""
    from datasets import build_datasets

    options = data_options(cfg)
    if cfg.input == "image":
        return build_datasets(cfg.dataset, cfg.data_root, download=cfg.download, val_fraction=cfg.val_fraction,
                              **options)
    from datasets.pi_images import pi_bundle

    # The class count comes from the image data set's registry entry, read without loading images.
    num_classes = build_datasets(cfg.dataset, cfg.data_root, download=cfg.download, **options).num_classes
    data = pi_bundle(cfg.pi_root, cfg.dataset, num_classes, val_fraction=cfg.val_fraction,
                     pi_cache=cfg.pi_cache, verify=not cfg.no_verify, input_norm=cfg.input_norm)
    cfg.image_pi_params = data.test.cache.params.to_dict()  # recorded: a TGD student checks its cache against it
    return data


def parse(argv: Optional[Sequence[str]] = None):
    """The options, resolved and checked -> ``(cfg, identity, inputs)`` (inputs: flag -> path); ``cfg.run_dir`` is
    named after the identity. Loads no data."""
    from datasets import data_fingerprint
    from engine.record import identity_of, input_sha256
    from models import resolve_arch

    parser = build_parser()
    cfg = parse_config(parser, argv, arch_key="model")
    dist = setup_stage(cfg, training=True)  # logging, threads, process group, seeds: before any message
    cfg.model = resolve_arch(cfg.model, "--model")  # official aliases too; fails before touching the data
    inputs = {"init_s": cfg.init_s}
    if cfg.input == "pi":  # the PI caches it reads, by their sealed manifests
        from datasets.pi_images import pi_cache_inputs

        inputs.update(pi_cache_inputs(cfg.pi_root, cfg.pi_cache, cfg.dataset, must_exist=not cfg.plan))
    hashes = {k: input_sha256(v) for k, v in inputs.items() if v}
    if cfg.input == "image":
        hashes["data_root"] = data_fingerprint(cfg.dataset, cfg.data_root, cfg.download, must_exist=not cfg.plan)
    identity = identity_of(parser, vars(cfg), hashes, world_size=dist.world_size)
    dataset_tag = cfg.dataset if cfg.input == "image" else f"{cfg.dataset}_pi"
    cfg.run_dir = cfg.run_dir or os.path.join(cfg.save_dir, teacher_run_name(
        cfg.model, dataset_tag, cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, cfg.trial) + f"-{identity.hash}")
    return cfg, identity, inputs


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    cfg, identity, inputs = parse(argv)
    run = plan_training(cfg, identity, inputs, arch=cfg.model)  # the run folder, or why to stop here
    if run.stop:
        return run.outcome
    distiller, data = build(cfg, inputs)
    with run.claim():  # the folder's lock while the run writes it
        return fit(distiller, data, cfg, run)


def build(cfg, inputs):
    """-> ``(distiller, data)``: the data set and the network (no file written)."""
    from distiller import get_distiller
    from engine.record import header_line, provenance
    from engine.trainer import pick_device
    from models import build_model
    from models.loading import init_from_checkpoint

    cfg.provenance = provenance(inputs, pick_device(cfg.device))
    log.info(header_line(cfg.provenance) + f"; seed {cfg.seed} (from {cfg.seed_from})")
    data = build_data(cfg)
    model = init_from_checkpoint(build_model(cfg.model, data.num_classes, data.in_channels), cfg.init_s)
    cfg.arch, cfg.num_classes, cfg.in_channels = cfg.model, data.num_classes, data.in_channels
    return get_distiller("vanilla")(model), data


if __name__ == "__main__":
    run_cli(main)
