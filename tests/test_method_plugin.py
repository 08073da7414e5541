"""The method plug-in contract: a method declared in one file trains through train_student.py; options a
method does not declare are errors; official spellings and any case still parse."""
import importlib.util
import os
import re

import pytest
import torch
import yaml

import train_student
from distiller import registry
from topkd_io import load_checkpoint, save_torch
from models import model_dict

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = ["--dataset", "digits", "--image_size", "8", "--num_workers", "0", "--device", "cpu", "--print_freq", "1000",
        "--lr_decay_epochs", "100", "--epochs", "1", "--model_s", "resnet8"]


@pytest.fixture()
def toy_registered(monkeypatch):
    """Load tests/toy_method.py into a copy of the registry (restored after the test)."""
    monkeypatch.setattr(registry, "distiller_dict", dict(registry.distiller_dict))
    monkeypatch.setattr(registry, "_canonical", dict(registry._canonical))
    spec = importlib.util.spec_from_file_location("toy_method", os.path.join(HERE, "toy_method.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """An untrained resnet8 checkpoint for digits (the plumbing is under test, not accuracy)."""
    path = tmp_path_factory.mktemp("t") / "resnet8_best.pth"
    torch.manual_seed(0)
    save_torch({"model": model_dict["resnet8"](num_classes=10).state_dict(), "arch": "resnet8",
                     "num_classes": 10}, str(path))
    return str(path)


def test_toy_method_keeps_the_method_contract(toy_registered):
    """The contract test_distillers.py checks for every registered method, on the toy built by its inherited
    `example`."""
    from contracts import check_method_contract

    check_method_contract(registry.get_distiller("toy_alias"))


def test_toy_method_from_one_file_trains_one_step(toy_registered, teacher, tmp_path):
    # digits has 1437 training images: one batch of 2048 = one optimizer step
    argv = DATA + ["--path_t", teacher, "--batch_size", "2048", "--save_dir", str(tmp_path),
                   "--distill", "TOY_ALIAS", "--tp", "3"]
    assert "--toy_power" in train_student.build_parser().format_help()
    summary = train_student.main(argv)
    run_dir = os.path.dirname(summary["last_checkpoint"])
    # the toy's own defaults (beta 0.5), its own option (tp) and the topology add-on's d-0.0 name the run
    assert re.fullmatch(r"S-resnet8_T-resnet8_digits_toy_r-1.0_a-0.0_b-0.5_tp-3.0_d-0.0_trial_0-[0-9a-f]{8}",
                        os.path.basename(run_dir))
    cfg = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    assert cfg["distill"] == "toy" and cfg["toy_power"] == 3.0 and cfg["beta"] == 0.5
    assert "nce_k" not in cfg and "dkd_alpha" not in cfg  # other methods' options are not recorded
    ckpt = load_checkpoint(summary["last_checkpoint"])
    assert ckpt["epoch"] == 1
    # the collector learns the name (and the alias) from the registry
    from tools.collect_results import method_key

    assert method_key({"distill": "toy_alias", "alpha": 0.0}) == "toy"


def test_undeclared_option_is_an_error(toy_registered, teacher, tmp_path, run_stage):
    base = DATA + ["--path_t", teacher, "--batch_size", "2048", "--save_dir", str(tmp_path)]
    for extra, words in [
        (["--distill", "kd", "--toy_power", "3"], ["--toy_power", "kd", "toy"]),
        (["--distill", "kd", "--nce_k", "5"], ["--nce_k", "crd"]),
        (["--distill", "tgd", "--path_t2", teacher, "-d", "5"], ["--delta", "tgd", "topology"]),
        (["--distill", "toy", "--pi_root", "x"], ["--pi_root", "tgd"]),
    ]:
        code, _, err = run_stage(train_student.main, base + extra)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        for w in words:
            assert w in err, err


def test_official_spellings_parse():
    parser = train_student.build_parser()
    cfg = parser.parse_args(["--distill", "crd", "--mode", "relax", "-r", "0.5", "-a", "0.25", "-b", "0.8",
                             "-d", "5"])
    assert (cfg.crd_mode, cfg.gamma, cfg.alpha, cfg.beta, cfg.delta) == ("relax", 0.5, 0.25, 0.8, 5.0)
    cfg = parser.parse_args(["--distill", "crd", "--crd_mode", "exact", "--gamma", "1", "--alpha", "2"])
    assert (cfg.crd_mode, cfg.gamma, cfg.alpha) == ("exact", 1.0, 2.0)
    # every method option parses to None when absent, so the chosen method's default can fill it in
    assert cfg.beta is None and cfg.nce_k is None and cfg.tgd_alpha is None


def test_method_defaults_fill_in():
    from distiller import get_distiller
    from distiller.options import resolve

    cfg = train_student.build_parser().parse_args(["--distill", "sp", "-a", "0.5"])
    # RepDistiller's command line for SP: -a 0 -b 3000 (official_commands.txt); gamma 1
    assert resolve(get_distiller("sp"), cfg) == {"gamma": 1.0, "alpha": 0.5, "beta": 3000.0, "kd_T": 4.0}
    assert resolve(get_distiller("dkd"), cfg)["dkd_beta"] == 8.0  # DKD paper, CIFAR


def test_conflicting_declarations_are_rejected():
    from distiller.options import Option, collect

    class A:
        options = (Option("x", 1, "one"),)

    class B:
        options = (Option("x", 2, "other"),)

    class C:
        options = (Option("y", 1, "y", flags=("--x",)),)

    with pytest.raises(ValueError, match="declared differently"):
        collect([("a", A), ("b", B)])
    with pytest.raises(ValueError, match="already taken"):
        collect([("a", A), ("c", C)])


def test_an_option_of_the_topology_term_is_declared_in_its_class_alone(teacher, tmp_path, monkeypatch, run_stage):
    """A new option of TopKD's term is its Option, its keyword and its use, all in `TopologyTerm`: the parser,
    the range check, the refusal with a method the term does not compose with, config.yaml and the run's identity
    follow, with no edit elsewhere (here a subclass with one more option stands in for the edited class)."""
    import distiller.topkd
    from distiller.options import Option
    from topology.ripsnet import RipsNet, save_ripsnet

    seen = []

    class Scaled(distiller.topkd.TopologyTerm):
        options = distiller.topkd.TopologyTerm.options + (
            Option("tda_scale", 1.0, "scale of both clouds", low=0.0, low_open=True),)

        def __init__(self, *args, tda_scale=1.0, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append(tda_scale)

    monkeypatch.setattr(distiller.topkd, "TopologyTerm", Scaled)
    rips = tmp_path / "mean_best.pth"
    save_ripsnet(RipsNet(64, pooling="mean"), str(rips))
    base = DATA + ["--path_t", teacher, "--batch_size", "2048", "--save_dir", str(tmp_path / "runs"),
                   "--topo_eval_batches", "0"]
    code, _, err = run_stage(train_student.main, base + ["--distill", "tgd", "--path_t2", teacher, "--tda_scale", "2"])
    assert code == 2 and "--tda_scale is not an option of --distill tgd" in err, err
    base += ["-d", "5", "--rips_path", str(rips)]
    assert "--tda_scale" in train_student.build_parser().format_help()
    code, _, err = run_stage(train_student.main, base + ["--tda_scale", "0"])
    assert code == 2 and "--tda_scale" in err and len(err.strip().splitlines()) == 1, err
    runs = [os.path.dirname(train_student.main(base + extra)["last_checkpoint"]) for extra in ([], ["--tda_scale", "2"])]
    assert seen == [1.0, 2.0]
    configs = [yaml.safe_load(open(os.path.join(run, "config.yaml"))) for run in runs]
    assert [c["identity"]["options"]["tda_scale"] for c in configs] == [1.0, 2.0]
    assert runs[0] != runs[1] and runs[0][:-8] == runs[1][:-8]  # same name, another identity hash
