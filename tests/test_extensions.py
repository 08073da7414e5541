"""docs/ADDING.md's recipes, tried from scratch: a data set (tests/toy_dataset.py) and a model
(tests/toy_model.py), each added from one file in the test tree with no other file touched, run through the
stage scripts. (The method recipe is tests/test_method_plugin.py with tests/toy_method.py.)

Each file is loaded into the live registries for this module and removed afterwards, so the rest of the
suite sees the registries as shipped.
"""
import re
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

import generate_image_PI
import generate_PCD_PI
import train_student
import train_teacher
from contracts import check_bundle_contract, check_model_contract

HERE = Path(__file__).resolve().parent
CPU = ["--num_workers", "0", "--device", "cpu", "--print_freq", "1000", "--threads", "1"]
ONE_EPOCH = ["--epochs", "1", "--lr_decay_epochs", "5"]


def _load(filename: str) -> None:
    spec = importlib.util.spec_from_file_location(Path(filename).stem, HERE / filename)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


@pytest.fixture(scope="module")
def toy_folder(tmp_path_factory):
    """tests/toy_dataset.py registered, and a tree of 16x16 PNGs in its layout (2 classes, 8 + 4 each)."""
    from PIL import Image

    from datasets import registry

    before = set(registry.DATASET_BUILDERS)
    _load("toy_dataset.py")
    root = tmp_path_factory.mktemp("toy_folder")
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 8), ("test", 4)):
        for c, name in enumerate(("circle", "square")):
            (root / split / name).mkdir(parents=True)
            for k in range(per_class):
                pixels = rng.integers(0, 128, size=(16, 16, 3)) + 100 * c  # the classes differ in brightness
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{k}.png")
    yield root
    for name in set(registry.DATASET_BUILDERS) - before:
        del registry.DATASET_BUILDERS[name], registry.DATASET_INFO[name]


@pytest.fixture(scope="module")
def toy_preact():
    """tests/toy_model.py registered."""
    from models import registry

    before = set(registry.model_dict)
    _load("toy_model.py")
    yield "toy_preact"
    for name in set(registry.model_dict) - before:
        del registry.model_dict[name], registry.model_info[name]


def test_data_set_from_one_file_runs_through_the_stages(toy_folder, tmp_path):
    from datasets import build_datasets, dataset_names
    from engine.config import RECIPES
    from models.run_names import parse_checkpoint_path

    assert "toy_folder" in dataset_names()
    check_bundle_contract(build_datasets("toy_folder", toy_folder, val_fraction=0.25), "toy_folder", RECIPES)
    data = ["--dataset", "toy_folder", "--data_root", str(toy_folder), "--batch_size", "8"] + CPU + ONE_EPOCH
    teacher = train_teacher.main(data + ["--model", "resnet8", "--save_dir", str(tmp_path / "t")])
    best = Path(teacher["best_checkpoint"])
    # the recipe the data set declares, and the run-folder name read back with the new data set in it
    assert re.fullmatch(r"resnet8_toy_folder_epoch_1_bs_8_lr_0.05_decay_0.0005_trial_0-[0-9a-f]{8}", best.parent.name)
    run = parse_checkpoint_path(best)
    assert (run.arch, run.dataset) == ("resnet8", "toy_folder")
    student = train_student.main(data + ["--path_t", str(best), "--model_s", "resnet8", "--distill", "kd",
                                         "--save_dir", str(tmp_path / "s")])
    assert Path(student["last_checkpoint"]).parent.name.startswith("S-resnet8_T-resnet8_toy_folder_kd_")
    # TGD's image-PI stage reads any registered data set
    generate_image_PI.main(["--dataset", "toy_folder", "--data_root", str(toy_folder), "--out", str(tmp_path / "pi"),
                            "--num_workers", "1", "--chunk_size", "8"])
    manifest = yaml.safe_load((tmp_path / "pi" / "toy_folder_train" / "manifest.yaml").read_text())
    assert manifest["count"] == 16 and manifest["complete"]


def test_model_from_one_file_runs_through_the_stages(toy_preact, tmp_path):
    from models import build_model, load_model, model_dict

    check_model_contract(model_dict[toy_preact])
    check_model_contract(model_dict[toy_preact], size=8, in_channels=1)
    assert build_model(toy_preact, 10, in_channels=6).conv1.in_channels == 6
    digits = ["--dataset", "digits", "--image_size", "8", "--batch_size", "256", "--max_steps", "1"] + CPU + ONE_EPOCH
    teacher = train_teacher.main(digits + ["--model", toy_preact, "--save_dir", str(tmp_path / "t")])
    model, arch, ckpt = load_model(teacher["best_checkpoint"])
    assert arch == toy_preact and ckpt["arch"] == toy_preact and type(model).__name__ == "PreActResNet"
    # as the student of a feature method (the hint regressor is sized from its feats) and as a stage-2 teacher
    student = train_student.main(digits + ["--path_t", teacher["best_checkpoint"], "--model_s", toy_preact,
                                           "--distill", "fitnet", "--save_dir", str(tmp_path / "s")])
    assert Path(student["last_checkpoint"]).parent.name.startswith(f"S-{toy_preact}_T-{toy_preact}_digits_fitnet_")
    out = tmp_path / "pcd"
    manifest = generate_PCD_PI.main(["--path_t", teacher["best_checkpoint"], "--dataset", "digits", "--image_size", "8",
                                     "--batch_size", "32", "--passes", "1", "--dims", "0", "--num_workers", "0",
                                     "--device", "cpu", "--no_progress", "--out_dir", str(out)])
    assert manifest["complete"] and np.load(out / "pi_dim0.npy").shape[0] == 1437 // 32
