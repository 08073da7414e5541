"""TGD's recipe and data as official: recipe selection, --augment, --init_s warm start, the PI-teacher
check before the run folder exists, and the TGD scripts' command line."""
import re
from pathlib import Path

import pytest
import torch
import yaml

import train_student
import train_teacher
from topkd_io import load_checkpoint, save_torch
from engine.config import data_options, parse_config

TGD_RECIPE = dict(lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=200,
                  lr_decay_epochs=[40, 80, 120, 160], lr_decay_rate=0.2, augment="none")


def resolved(cfg, keys=TGD_RECIPE):
    return {k: getattr(cfg, k) for k in keys}


def test_tgd_and_pi_teacher_take_tgds_recipe_unless_flags_override():
    student = train_student.build_parser()
    cfg = parse_config(student, ["--distill", "tgd"], arch_key="model_s")
    assert cfg.recipe == "tgd" and resolved(cfg) == TGD_RECIPE
    assert data_options(cfg)["train_augment"] is False
    cfg = parse_config(student, ["--distill", "tgd", "--lr", "0.05", "--augment", "standard", "--epochs", "3"],
                       arch_key="model_s")
    assert (cfg.lr, cfg.augment, cfg.epochs, cfg.weight_decay) == (0.05, "standard", 3, 1e-4)
    assert data_options(cfg)["train_augment"] is True
    # other methods keep the CIFAR recipe, with the standard augmentation
    cfg = parse_config(student, ["--distill", "kd"], arch_key="model_s")
    assert cfg.recipe == "cifar" and (cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.augment) == (0.05, 5e-4, 64, "standard")
    cfg = parse_config(student, ["--distill", "kd", "--augment", "none"], arch_key="model_s")
    assert data_options(cfg)["train_augment"] is False
    # an explicit --recipe wins over the method's
    assert parse_config(student, ["--distill", "tgd", "--recipe", "cifar"], arch_key="model_s").lr == 0.05
    teacher = train_teacher.build_parser()
    cfg = parse_config(teacher, ["--input", "pi", "--model", "wrn_16_3"])
    assert cfg.recipe == "tgd" and resolved(cfg) == TGD_RECIPE
    assert parse_config(teacher, ["--model", "wrn_16_3"]).recipe == "cifar"
    with pytest.raises(SystemExit):  # argparse rejects unknown choices
        parse_config(student, ["--augment", "heavy"], arch_key="model_s")


def test_augment_none_gives_the_plain_training_images():
    from datasets import build_datasets

    plain = build_datasets("digits", "unused", image_size=8, **data_options(
        parse_config(train_student.build_parser(), ["--dataset", "digits", "--distill", "tgd"], arch_key="model_s")))
    torch.manual_seed(0)
    first = torch.stack([plain.train[i][0] for i in range(32)])
    again = torch.stack([plain.train[i][0] for i in range(32)])
    assert torch.equal(first, again)  # no random transform
    augmented = build_datasets("digits", "unused", image_size=8, train_augment=True)
    torch.manual_seed(0)
    crops = torch.stack([augmented.train[i][0] for i in range(32)])
    assert not torch.equal(crops, first)  # the standard pipeline crops


# ---------------------------------------------------------------------------------------------- end to end

DATA = ["--dataset", "digits", "--image_size", "8", "--num_workers", "0", "--device", "cpu", "--print_freq", "1000"]


@pytest.fixture(scope="module")
def tgd_inputs(tmp_path_factory):
    """Digits image-PI caches (8x8 images: fast), random-weight image and PI teachers and a student
    checkpoint (only the plumbing is under test)."""
    from datasets import build_datasets
    from datasets.pi_images import build_pi_cache, cache_folder, to_unit_tensor
    from datasets.bundle import with_transform
    from models import model_dict

    root = tmp_path_factory.mktemp("tgd")
    small = build_datasets("digits", "unused", image_size=8, train_augment=False)
    for split, part in (("train", small.train), ("test", small.test)):
        build_pi_cache(with_transform(part, to_unit_tensor), cache_folder(root / "image_pi", "digits", split), "digits",
                       split, chunk_size=2048)
    torch.manual_seed(0)
    paths = {}
    for name, arch, channels in (("image", "resnet8", 3), ("pi", "resnet8", 6), ("student", "resnet8", 3)):
        model = model_dict[arch](num_classes=10, **({"in_channels": channels} if channels != 3 else {}))
        path = root / name / f"{arch}_best.pth"
        path.parent.mkdir()
        save_torch({"model": model.state_dict(), "arch": arch, "num_classes": 10, "in_channels": channels},
                        str(path))
        paths[name] = str(path)
    paths["pi_root"] = str(root / "image_pi")
    return paths


def tgd_argv(inputs, run_dir, *extra):
    return DATA + ["--distill", "tgd", "--model_s", "resnet8", "--path_t", inputs["image"], "--path_t2",
                   inputs["pi"], "--pi_root", inputs["pi_root"], "--run_dir", str(run_dir), "--seed", "1",
                   "--epochs", "1", *extra]


def test_image_teacher_as_pi_teacher_fails_before_the_run_folder(tgd_inputs, tmp_path, run_stage):
    run_dir = tmp_path / "run"
    argv = tgd_argv(tgd_inputs, run_dir)
    argv[argv.index("--path_t2") + 1] = tgd_inputs["image"]
    code, _, err = run_stage(train_student.main, argv)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "--path_t2" in err and "--input pi" in err and "6" in err, err
    assert not run_dir.exists()
    # the swap (PI teacher as the image teacher) is caught the same way
    argv = tgd_argv(tgd_inputs, run_dir)
    argv[argv.index("--path_t") + 1] = tgd_inputs["pi"]
    code, _, err = run_stage(train_student.main, argv)
    assert code == 2 and tgd_inputs["pi"] in err and "--input pi" in err and not run_dir.exists(), err
    # a missing or unfitting --init_s is reported before the run folder too
    code, _, err = run_stage(train_student.main, tgd_argv(tgd_inputs, run_dir, "--init_s", str(tmp_path / "no.pth")))
    assert code == 2 and "--init_s" in err and not run_dir.exists(), err
    code, _, err = run_stage(train_student.main, tgd_argv(tgd_inputs, run_dir, "--init_s", tgd_inputs["pi"]))
    assert code == 2 and "--init_s" in err and "does not fit" in err and not run_dir.exists(), err


def test_tgd_student_warm_started_with_the_tgd_recipe(tgd_inputs, tmp_path):
    run_dir = tmp_path / "run"
    summary = train_student.main(tgd_argv(tgd_inputs, run_dir, "--init_s", tgd_inputs["student"],
                                          "--lr", "1e-9", "--threads", "1"))
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["recipe"] == "tgd" and cfg["augment"] == "none" and cfg["weight_decay"] == 1e-4
    assert cfg["lr_decay_rate"] == 0.2 and cfg["batch_size"] == 128 and cfg["init_s"] == tgd_inputs["student"]
    # with a vanishing learning rate the trained weights are still the warm-start ones (a fresh
    # initialisation could not match them)
    start = load_checkpoint(tgd_inputs["student"])["model"]
    end = load_checkpoint(summary["last_checkpoint"])["model"]
    convs = [k for k, v in start.items() if k.endswith("weight") and v.ndim == 4]
    assert convs and all(torch.allclose(start[k], end[k], atol=1e-6) for k in convs)


# ---------------------------------------------------------------------------------------------- scripts

def test_tgd_student_script_follows_the_official_readme(repo_root):
    """The official command: --alpha 0.99, --seed 1234, --student_checkpoint when given (here INIT_S)."""
    text = (Path(repo_root) / "scripts" / "tgd" / "train_student.sh").read_text()
    assert re.search(r'TGD_ALPHA="\$\{TGD_ALPHA:-0\.99\}"', text)
    assert re.search(r'SEED="\$\{SEED:-1234\}"', text) and "--seed" in text
    assert "--init_s" in text and "INIT_S" in text
    assert "--tgd_alpha" in text
