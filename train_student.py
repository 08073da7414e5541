"""Stage 4: distil a teacher into a student, optionally with TopKD's topology term.

    python train_student.py --path_t save_t_models/resnet56_cifar100_lr_0.05_decay_0.0005_trial_0/resnet56_best.pth \
        --model_s resnet20 --distill kd -r 1 -a 2 -d 5 --rips_path ripsnet/<run>/mean_best.pth

Loss: ``gamma * CE + alpha * KD + beta * <method term> + delta * TDA`` (each term logged separately). The
method options are declared by the methods of the registry (`distiller.options`) and by TopKD's topology term
(`distiller.topkd.TopologyTerm`), which `build` attaches to the method; ``-d 0`` (default) = no topology term.
Run folder: <save_dir>/S-<s>_T-<t>_<dataset>_<distill>[+<method>]_r-<g>_a-<a>[_b-<b>]_d-<d>_trial_<n>-<hash>/
(<hash>: the run's identity, `engine.record`). Every run also measures the student's latent topology against
the teacher's (`engine.topo_eval.TopologyProbe`) at the last epoch, or every ``--topo_eval_every`` epochs."""
import argparse
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from topkd_io import TopKDError, run_cli
from engine.config import StageParser, add_data_args, add_training_args, data_options, parse_config
from engine.record import option, plan_training
from engine.stage import setup_stage
from engine.trainer import fit

log = logging.getLogger("train_student")  # by name: run as a script, __name__ is "__main__"


def student_methods() -> Dict[str, type]:
    """Registered name -> class of every method that builds itself from the command line."""
    from distiller import get_distiller, method_names

    classes = {n: get_distiller(n) for n in method_names()}
    return {n: cls for n, cls in classes.items() if hasattr(cls, "from_config")}


def option_owners() -> List[Tuple[str, Any]]:
    """``(name, class)`` for every student method, in registration order, then the topology term."""
    from distiller.topkd import TopologyTerm

    return [*student_methods().items(), ("topology", TopologyTerm)]


def build_parser() -> argparse.ArgumentParser:
    from distiller import aliases_of, canonical_name
    from distiller.options import collect, default_text
    from distiller.topkd import TopologyTerm

    def method_recipe(options: Dict[str, Any]) -> Optional[str]:  # the --distill method's (TGD's), else None
        return getattr(student_methods().get(canonical_name(options.get("distill") or "")), "recipe", None)

    parser = StageParser(description="Distil a teacher into a student (KD, FitNet, ..., TopKD).",
                         recipe_rules=[method_recipe])
    g = parser.add_argument_group("networks")
    g.add_argument("--model_s", default="resnet8", help="student architecture (models.model_dict)")
    option(g, "--path_t", default=None, result=False,  # an input: in the identity by its SHA-256
           help="teacher checkpoint, its run folder, or a folder of run folders (default: the one finished "
                "teacher of --model_t / --teacher_trial under save_t_models)")
    g.add_argument("--model_t", default=None, help="teacher architecture when the checkpoint does not name it")
    option(g, "--teacher_trial", type=int, default=None, result=False,
           help="without an exact --path_t: take the teacher of this trial")
    names = [n + (f" ({'/'.join(aliases_of(n))})" if aliases_of(n) else "") for n in student_methods()]
    parser.add_argument_group("distillation").add_argument("--distill", default="kd",
                                                           help=f"method, any case: {', '.join(names)}")
    groups: Dict[str, Any] = {}
    for name, (opt, declared_by) in collect(student_methods().items()).items():
        title = "every method" if len(declared_by) >= len(student_methods()) else f"--distill {declared_by[0][0]}"
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        opt.add_to(groups[title], default_text(declared_by))
    g = parser.add_argument_group("TopKD's topology term (composes with the teacher -> student methods but tgd)")
    for opt in TopologyTerm.options:
        opt.add_to(g, default_text([("topology", opt.default)]))
    add_data_args(parser)
    add_training_args(parser, save_dir="./save_s_models")
    add_topo_eval_args(parser)
    return parser


def add_topo_eval_args(parser: argparse.ArgumentParser) -> None:
    """The topology measurement of every student run: it never changes the trained weights (not a result)."""
    from engine.topo_eval import DEFAULT_BATCH_SIZE, DEFAULT_BATCHES
    from topology.metrics import NORMALIZATIONS

    g = parser.add_argument_group("topology measurement (every method)")
    option(g, "--topo_eval_every", type=int, default=0, metavar="N", result=False,
           help="measure the student's topology against the teacher's every N epochs and at the last one "
                "(default 0: the last epoch only)")
    option(g, "--topo_eval_batches", type=int, default=DEFAULT_BATCHES, metavar="K", result=False,
           help=f"fixed test batches measured, the same for every method and seed ({DEFAULT_BATCHES}; 0 = none)")
    option(g, "--topo_eval_batch_size", type=int, default=DEFAULT_BATCH_SIZE, result=False,
           help=f"points per measured cloud (default {DEFAULT_BATCH_SIZE}, the official cloud size)")
    option(g, "--topo_eval_dims", type=int, nargs="+", default=[0], choices=(0, 1), result=False,
           help="homology dimensions measured (default 0)")
    option(g, "--topo_eval_normalize", default="diam", choices=NORMALIZATIONS, result=False,
           help="normalised distances: each cloud divided by its diameter or its mean pairwise distance")


def topology_probe(cfg: argparse.Namespace, teacher, data):
    """The run's `TopologyProbe` (None with ``--topo_eval_batches 0``) at the topology term's layers, if any."""
    from engine.topo_eval import TopologyProbe

    if not cfg.topo_eval_batches:
        return None
    layer_t = getattr(cfg, "tda_layer_t", None)
    probe = TopologyProbe(teacher, data.test, layer_t=-1 if layer_t is None else layer_t,
                          layer_s=getattr(cfg, "tda_layer_s", None), batches=cfg.topo_eval_batches,
                          batch_size=cfg.topo_eval_batch_size, dims=cfg.topo_eval_dims,
                          normalize=cfg.topo_eval_normalize, every=cfg.topo_eval_every or None)
    got = (len(probe.indices), len(probe.indices[0]))
    if got != probe.requested:
        log.info(f"note: the test set holds {len(data.test)} items: topology measured on {got[0]} batch(es) of "
                 f"{got[1]} instead of {probe.requested[0]} x {probe.requested[1]}")
    return probe


def configure_method(cfg: argparse.Namespace):
    """Pick the method (and the topology term when it composes with it), refuse options they do not declare and
    fill in their defaults -> ``(method class, terms)``. ``cfg.distill`` becomes the registered name, options of
    other methods leave ``cfg``, and ``cfg.unused_options`` lists those no term uses (``-b`` of KD, the topology
    options with ``-d 0``): left out of the run name and identity, a given loss weight among them noted."""
    from distiller import canonical_name
    from distiller.options import check_undeclared, collect, declared, resolve
    from distiller.topkd import TopologyTerm

    methods = student_methods()
    name = canonical_name(cfg.distill)
    if name not in methods:
        raise TopKDError(f"unknown --distill {cfg.distill!r}; choose one of: {', '.join(methods)}")
    cfg.distill, method = name, methods[name]
    terms = [TopologyTerm] if method.with_topology else []
    allowed = {o.name for owner in (method, *terms) for o in declared(owner)}
    table = collect(option_owners())
    check_undeclared(cfg, table, allowed, name)
    for key in set(table) - allowed:
        delattr(cfg, key)
    for owner in (method, *terms):
        vars(cfg).update(resolve(owner, cfg))
    cfg.unused_options = list(dict.fromkeys(n for owner in (method, *terms) for n in owner.unused_options(cfg)))
    for name in cfg.unused_options:
        value = getattr(cfg, name, None)
        if name in ("gamma", "alpha", "beta") and isinstance(value, (int, float)) and value:
            log.info(f"note: {'/'.join(table[name][0].spellings())} {value} is not used by --distill {cfg.distill} "
                     f"(no term of it takes that weight); left out of the run name and identity")
    return method, terms


def run_name(cfg: argparse.Namespace, method, terms) -> str:
    label, params = method.run_tag(cfg)
    for term in terms:
        more_label, more_params = term.run_tag(cfg)
        label, params = label + more_label, "_".join(p for p in (params, more_params) if p)
    return f"S-{cfg.model_s}_T-{cfg.model_t}_{cfg.dataset}_{label}_{params}_trial_{cfg.trial}"


def parse(argv: Optional[Sequence[str]] = None):
    """The options, resolved and checked -> ``(cfg, method, terms, identity, inputs)``; loads no data."""
    from datasets import data_fingerprint
    from engine.record import identity_of, input_sha256
    from models import resolve_arch
    from models.loading import teacher_and_arch

    parser = build_parser()
    cfg = parse_config(parser, argv, arch_key="model_s")
    dist = setup_stage(cfg, training=True)  # logging, threads, process group, seeds: before any message
    cfg.model_s = resolve_arch(cfg.model_s, "--model_s")  # official aliases too; fails before any data loads
    if cfg.model_t is not None:
        cfg.model_t = resolve_arch(cfg.model_t, "--model_t")
    method, terms = configure_method(cfg)
    cfg.path_t, cfg.model_t = teacher_and_arch(cfg.path_t, cfg.model_t, cfg.dataset, cfg.teacher_trial, cfg.plan)
    inputs: Dict[str, Optional[str]] = {"path_t": cfg.path_t, "init_s": cfg.init_s}
    for owner in (method, *terms):
        if hasattr(owner, "input_files"):
            inputs.update(owner.input_files(cfg, must_exist=not cfg.plan))
    inputs = {k: v for k, v in inputs.items() if v}
    hashes = {k: input_sha256(v) for k, v in inputs.items()}
    hashes["data_root"] = data_fingerprint(cfg.dataset, cfg.data_root, cfg.download, must_exist=not cfg.plan)
    identity = identity_of(parser, vars(cfg), hashes, unused=cfg.unused_options, world_size=dist.world_size)
    cfg.run_dir = cfg.run_dir or os.path.join(cfg.save_dir, f"{run_name(cfg, method, terms)}-{identity.hash}")
    return cfg, method, terms, identity, inputs


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    cfg, method, terms, identity, inputs = parse(argv)
    run = plan_training(cfg, identity, inputs, arch=cfg.model_s)  # the run folder, or why to stop here
    if run.stop:
        return run.outcome
    distiller, data, probes = build(cfg, method, terms, inputs)
    with run.claim():  # the folder's lock while the run writes it
        return fit(distiller, data, cfg, run, probes=probes)


def build(cfg: argparse.Namespace, method, terms, inputs):
    """-> ``(distiller, data, probes)``: data, teacher(s), student, the method with TopKD's topology term
    attached (when ``terms`` has it and ``-d > 0``) and the topology probe (no file written)."""
    from datasets import build_datasets
    from distiller.topkd import TopologyTerm
    from engine.record import header_line, provenance, recorded_accuracy
    from engine.trainer import pick_device
    from models import build_model, load_model
    from models.loading import init_from_checkpoint

    data = build_datasets(cfg.dataset, cfg.data_root, download=cfg.download, val_fraction=cfg.val_fraction,
                          **data_options(cfg))
    teacher, cfg.model_t, teacher_ckpt = load_model(cfg.path_t, arch=cfg.model_t, num_classes=data.num_classes,
                                                    in_channels=data.in_channels)
    teacher_top1 = recorded_accuracy(teacher_ckpt)
    cfg.provenance = provenance(inputs, pick_device(cfg.device), teacher_top1=teacher_top1)
    log.info(header_line(cfg.provenance) + f"; seed {cfg.seed} (from {cfg.seed_from})")
    sha = cfg.provenance["inputs"]["path_t"]["sha256"]
    log.info(f"teacher: {cfg.path_t} ({cfg.model_t}, sha256 {sha[:8]}, test top-1 "
             f"{'not recorded' if teacher_top1 is None else f'{teacher_top1:.2f}'} in its checkpoint)")
    student = init_from_checkpoint(build_model(cfg.model_s, data.num_classes, data.in_channels), cfg.init_s)
    distiller, data, options = method.from_config(cfg, student, teacher, data)
    vars(cfg).update(options)  # as built: CRD's --nce_k clipped to the training set, TGD's --model_t2 resolved
    if TopologyTerm in terms:
        distiller.topology = TopologyTerm.from_config(cfg, distiller, inputs)  # None with -d 0
    cfg.arch, cfg.num_classes, cfg.in_channels = cfg.model_s, data.num_classes, data.in_channels
    cfg.loss = distiller.loss_summary()  # the resolved weights, in the run header and config.yaml
    probe = topology_probe(cfg, teacher, data)
    return distiller, data, [probe] if probe else []


if __name__ == "__main__":
    run_cli(main)
