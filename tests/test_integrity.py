"""Nothing read unchecked: artifacts are verified where they are read, numbers are checked at
the door, YAML is strict at the command line, every failure ends in one line, image-PI caches with other
parameters are usable, and TGD's inputs are normalised as its official loader does.

Each test first builds a hostile input (a cut cache, a same-size edit, swapped manifest
entries, a tampered bandwidth, a NaN weight, ...) and then checks the one-line refusal (or the repair).
Inputs are tiny: digits at 8x8, stage-2 folders of 60 clouds of 12 points, one optimisation step.
"""
import os
import shutil
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import generate_PCD_PI as stage2
import train_ripsnet as stage3
import train_student
import train_teacher
from topkd_io import load_checkpoint, save_torch, seal

from helpers import zip_writer_full
from test_reliability import BASE, one_line

DIGITS = ["--dataset", "digits", "--image_size", "8", "--num_workers", "0", "--device", "cpu", "--print_freq",
          "1000", "--threads", "1"]
UNITS = ["--units", "3,8,8,8,50,100,200,400"]


def edit_yaml(path, change, reseal=False):
    """Load a YAML file, apply ``change(data)``, write it back (re-sealed: as a buggy writer would)."""
    data = yaml.safe_load(Path(path).read_text())
    change(data)
    Path(path).write_text(yaml.safe_dump(seal(data) if reseal else data))


def flip_byte(path, offset=-40):
    """Same size, other content: only a checksum notices."""
    raw = bytearray(Path(path).read_bytes())
    raw[offset] ^= 0xFF
    Path(path).write_bytes(bytes(raw))


# ----------------------------------------------------------------------------- shared inputs
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A finished stage-2 folder (60 clouds [12, 3], 3 shards), a RipsNet trained 1 epoch on it, a random
    resnet8 digits teacher, and digits image-PI caches (8x8 images) under ``image_pi``."""
    from datasets import build_datasets
    from datasets.pi_images import build_pi_cache, cache_folder, to_unit_tensor
    from datasets.bundle import with_transform
    from models import build_model

    root = tmp_path_factory.mktemp("integrity")
    rng = np.random.default_rng(0)
    clouds = (rng.normal(size=(60, 12, 3)) * rng.uniform(0.3, 2.0, size=(60, 1, 1))).astype(np.float32)
    np.save(root / "clouds.npy", clouds)
    stage2.main(["--pcd", str(root / "clouds.npy"), "--out_dir", str(root / "s2"), "--shard_size", "20",
                 "--no_progress"])
    stage3.main(["--data_dir", str(root / "s2"), "--run_dir", str(root / "rips"), "--no_progress", "--epochs", "1"]
                + UNITS)
    torch.manual_seed(0)
    teacher = root / "teacher" / "resnet8_best.pth"
    save_torch({"model": build_model("resnet8", num_classes=10).state_dict(), "arch": "resnet8",
                "num_classes": 10}, teacher)
    small = build_datasets("digits", "unused", image_size=8, train_augment=False)
    for split, part in (("train", small.train), ("test", small.test)):
        build_pi_cache(with_transform(part, to_unit_tensor), cache_folder(root / "image_pi", "digits", split),
                       "digits", split, chunk_size=512,
                       command=f"python generate_image_PI.py --dataset digits --split {split}")
    return {"root": root, "s2": root / "s2", "rips": root / "rips" / "mean_best.pth", "teacher": teacher,
            "pi_root": root / "image_pi", "small": small}


@pytest.fixture()
def s2(built, tmp_path):
    """A private copy of the stage-2 folder (tests damage it)."""
    folder = tmp_path / "s2"
    shutil.copytree(built["s2"], folder)
    return folder


def stage3_argv(folder, run):
    return ["--data_dir", str(folder), "--run_dir", str(run), "--no_progress", "--epochs", "1"] + UNITS


def exact_argv(built, folder, run, *extra):
    return DIGITS + ["--path_t", str(built["teacher"]), "--model_s", "resnet8", "--distill", "kd", "-d", "1",
                     "--method", "topkd_exact", "--pi_params", str(folder), "--run_dir", str(run), *extra]


# ----------------------------------------------------------------------------- 1. verified where read
def test_half_size_image_pi_cache_is_refused_and_rebuilt(built, tmp_path, run_stage, capsys):
    """Was: a cache cut to half its size was "completed" with zeros by the next run (0.0 s) and trained on.
    Now: readers refuse it naming the file and the command; the builder rebuilds it."""
    from datasets.pi_images import build_pi_cache, cache_folder, to_unit_tensor
    from datasets.bundle import with_transform

    pi_root = tmp_path / "image_pi"
    shutil.copytree(built["pi_root"], pi_root)
    cache = cache_folder(pi_root, "digits", "train")
    intact = (cache / "pi.npy").read_bytes()
    with open(cache / "pi.npy", "r+b") as f:
        f.truncate(len(intact) // 2)
    argv = DIGITS + ["--model", "resnet8", "--input", "pi", "--pi_root", str(pi_root), "--epochs", "1",
                     "--run_dir", str(tmp_path / "t")]
    code, _, err = run_stage(train_teacher.main, argv)
    one_line(code, err, str(cache / "pi.npy"), f"has {len(intact) // 2} bytes", "rebuild it with: python "
             "generate_image_PI.py --dataset digits --split train")
    assert not (tmp_path / "t").exists()
    code, _, err = run_stage(train_teacher.main, argv + ["--no_verify"])  # the size is checked even so
    one_line(code, err, str(cache / "pi.npy"), "bytes")
    source = with_transform(built["small"].train, to_unit_tensor)
    build_pi_cache(source, cache, "digits", "train", chunk_size=512)
    assert "image PIs: rebuilding" in capsys.readouterr().out
    assert (cache / "pi.npy").read_bytes() == intact


def test_no_cache_is_grown_through_a_writable_memory_map(repo_root):
    """A writable memory map dies with SIGBUS on a full disk (generate_image_PI.py's "Bus error"): none
    is left in the project's code."""
    hits = []
    for path in Path(repo_root).rglob("*.py"):
        if any(part in ("tests", ".venv") for part in path.parts):
            continue
        text = path.read_text()
        for needle in ('mmap_mode="r+"', "mmap_mode='r+'", 'mode="w+"', "mode='w+'", "np.memmap("):
            if needle in text:
                hits.append(f"{path.relative_to(repo_root)}: {needle}")
    assert not hits, hits


def test_same_size_corruption_of_a_cache_and_of_a_shard(built, s2, tmp_path, run_stage, capsys):
    """Was: zeroed cache rows and a shard overwritten at the same size were used, exit 0. Now: refused by
    their SHA-256 naming the file and the command that rebuilds them; --no_verify is logged."""
    from datasets.pi_images import cache_folder, load_pi_cache

    pi_root = tmp_path / "image_pi"
    shutil.copytree(built["pi_root"], pi_root)
    cache = cache_folder(pi_root, "digits", "test")
    flip_byte(cache / "pi.npy", offset=-1000)
    with pytest.raises(ValueError, match=r"pi\.npy does not match the SHA-256 .* rebuild it with: python "
                                         r"generate_image_PI.py"):
        load_pi_cache(cache)
    load_pi_cache(cache, verify=False)
    assert "--no_verify: the SHA-256 of the image-PI cache" in capsys.readouterr().out
    # a shard: stage 3 and stage 4 (--method topkd_exact --pi_params)
    flip_byte(s2 / "shards" / "pcd_00001.npy")
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r"))
    one_line(code, err, str(s2 / "shards" / "pcd_00001.npy"), "does not match the SHA-256",
             "rebuild it with: python generate_PCD_PI.py --pcd", f"--out_dir {s2}")
    assert not (tmp_path / "r" / "mean_best.pth").exists()
    code, _, err = run_stage(train_student.main, exact_argv(built, s2, tmp_path / "s"))
    one_line(code, err, "pcd_00001.npy", "does not match the SHA-256")
    code, out, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r") + ["--no_verify"])
    assert code == 0 and "--no_verify: the SHA-256 of the files of" in out, err


def test_wrong_sha256_values_in_a_manifest(s2, tmp_path, run_stage):
    """Was: a manifest with wrong SHA-256 values was accepted. Now: its own checksum refuses the edit, and
    a re-sealed one (a buggy writer) is refused by the files' checksums."""
    def wrong(data):
        data["shards"][0]["files"]["shards/pcd_00000.npy"]["sha256"] = "0" * 64

    edit_yaml(s2 / "manifest.yaml", wrong)
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r"))
    one_line(code, err, str(s2 / "manifest.yaml"), "does not match its own checksum")
    edit_yaml(s2 / "manifest.yaml", lambda d: None, reseal=True)
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r"))
    one_line(code, err, "pcd_00000.npy does not match the SHA-256")


def test_swapped_manifest_entries(s2, tmp_path, run_stage):
    """Was: two shards' entries swapped trained clouds against the wrong PIs. Now: refused."""
    def swap(data):
        data["shards"][0], data["shards"][1] = data["shards"][1], data["shards"][0]

    edit_yaml(s2 / "manifest.yaml", swap)
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r"))
    one_line(code, err, "manifest.yaml", "does not match its own checksum")
    edit_yaml(s2 / "manifest.yaml", lambda d: None, reseal=True)
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r"))
    one_line(code, err, "shard record 0", "entries swapped or edited")


def test_tampered_bandwidth_and_ripsnet_pi_parameters(built, s2, tmp_path, run_stage):
    """Was: a tampered bandwidth or resolution in the manifest was copied into the RipsNet's pi_params.
    Now: the manifest is refused by stage 3 and stage 4; a RipsNet whose pi_params disagree with its
    resolution or with the manifest it records is refused by stage 4."""
    def tamper(data):
        data["pi"][0]["params"]["bandwidth"] *= 3

    edit_yaml(s2 / "manifest.yaml", tamper)
    for main, argv in ((stage3.main, stage3_argv(s2, tmp_path / "r")),
                       (train_student.main, exact_argv(built, s2, tmp_path / "s"))):
        code, _, err = run_stage(main, argv)
        one_line(code, err, str(s2 / "manifest.yaml"), "does not match its own checksum")
    assert not (tmp_path / "r" / "mean_best.pth").exists() and not (tmp_path / "s").exists()
    ckpt = load_checkpoint(built["rips"])
    cases = {"bandwidth": lambda c: c["pi_params"].update(bandwidth=c["pi_params"]["bandwidth"] * 3),
             "resolution": lambda c: c["pi_params"].update(resolution=[21, 20])}
    words = {"bandwidth": "differ from those of the stage-2 manifest it records",
             "resolution": "resolution 21x20 does not fit its 400-pixel output"}
    for name, change in cases.items():
        bad = dict(ckpt, pi_params=dict(ckpt["pi_params"]))
        change(bad)
        path = tmp_path / name / "mean_best.pth"
        save_torch(bad, path)
        argv = DIGITS + ["--path_t", str(built["teacher"]), "--model_s", "resnet8", "-d", "1", "--rips_path",
                         str(path), "--run_dir", str(tmp_path / "s")]
        code, _, err = run_stage(train_student.main, argv)
        one_line(code, err, str(path), words[name])


def test_unfinished_folder_marked_complete(tmp_path, run_stage):
    """Was: an unfinished stage-2 folder marked complete said "pass --dim 0". Now: the edit is refused by
    the checksum, and a re-sealed one says the folder holds no images and how to complete it."""
    rng = np.random.default_rng(1)
    np.save(tmp_path / "c.npy", rng.normal(size=(40, 8, 3)).astype(np.float32))
    folder = tmp_path / "d"
    stage2.main(["--pcd", str(tmp_path / "c.npy"), "--out_dir", str(folder), "--shard_size", "20",
                 "--max_shards", "1", "--no_progress"])
    edit_yaml(folder / "manifest.yaml", lambda d: d.update(complete=True))
    code, _, err = run_stage(stage3.main, stage3_argv(folder, tmp_path / "r"))
    one_line(code, err, "does not match its own checksum")
    edit_yaml(folder / "manifest.yaml", lambda d: None, reseal=True)
    code, _, err = run_stage(stage3.main, stage3_argv(folder, tmp_path / "r"))
    line = one_line(code, err, "is marked complete but holds no persistence images", "generate_PCD_PI.py --pcd")
    assert "--dim 0" not in line
    # the recorded command completes it (a tampered manifest there is started afresh, logged)
    stage2.main(["--pcd", str(tmp_path / "c.npy"), "--out_dir", str(folder), "--shard_size", "20", "--no_progress"])
    assert stage3.main(stage3_argv(folder, tmp_path / "r"))["epochs_run"] == 1


# ----------------------------------------------------------------------------- 2. numbers at the door
@pytest.mark.parametrize("extra, words", [
    (["-r", "-1"], ["-r/--gamma must be a finite number >= 0, got -1.0"]),
    (["-a", "-1"], ["-a/--alpha must be a finite number >= 0"]),
    (["-a", "nan"], ["-a/--alpha", "got nan"]),
    (["-b", "inf"], ["-b/--beta", "got inf"]),
    (["-d", "nan"], ["-d/--delta", "got nan"]),
    (["--kd_T", "inf"], ["--kd_T must be a finite number > 0, got inf"]),
    (["--kd_T", "0"], ["--kd_T must be a finite number > 0"]),
    (["--distill", "dkd", "--dkd_beta", "nan"], ["--dkd_beta", "got nan"]),
    (["--distill", "crd", "--nce_t", "0"], ["--nce_t must be a finite number > 0"]),
    (["--distill", "rkd", "--rkd_w_angle", "-5"], ["--rkd_w_angle must be a finite number >= 0"]),
    (["--lr", "inf"], ["--lr must be a finite number > 0, got inf"]),
    (["--weight_decay", "nan"], ["--weight_decay", "got nan"]),
    (["--seed", str(2**64)], ["--seed must be an integer from 0 to 2**63-1", str(2**64)]),
    (["--seed", "-1"], ["--seed must be an integer"]),
])
def test_negative_and_non_finite_weights(built, tmp_path, run_stage, extra, words):
    """Was: -r -1, -a -1, -d nan, --kd_T inf, -a nan, -b inf accepted (a NaN at step 1 with a hint to
    lower the learning rate); --seed 2**64 ended in "Overflow when unpacking long long". Now: one line
    naming the flag, before the run folder exists. The ranges are declared in each method's Option."""
    run = tmp_path / "s"
    code, _, err = run_stage(train_student.main, DIGITS + ["--path_t", str(built["teacher"]), "--model_s", "resnet8",
                                                           "--run_dir", str(run)] + extra)
    one_line(code, err, *words)
    assert not run.exists()


def test_every_numeric_method_option_declares_a_finite_check():
    """The check is generic: every numeric option of every method and of the topology term refuses NaN (no list)."""
    from distiller.options import collect
    from train_student import option_owners

    checked = []
    for name, (opt, _) in collect(option_owners()).items():
        if isinstance(opt.default, (int, float)) and not isinstance(opt.default, bool):
            with pytest.raises(ValueError, match=f"{opt.spellings()[0]}.*finite"):
                opt.check(float("nan"))
            checked.append(name)
    assert {"gamma", "alpha", "beta", "kd_T", "delta", "tgd_alpha", "nce_k", "dkd_beta"} <= set(checked)


def test_seed_of_stage2_and_stage3(s2, tmp_path, run_stage):
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r") + ["--seed", str(2**64)])
    one_line(code, err, "--seed must be an integer from 0")
    code, _, err = run_stage(stage3.main, stage3_argv(s2, tmp_path / "r") + ["--min_delta", "nan"])
    one_line(code, err, "--min_delta must be a finite number >= 0")
    code, _, err = run_stage(stage2.main, ["--pcd", str(tmp_path / "x.npy"), "--seed", str(2**70)])
    one_line(code, err, "--seed must be an integer from 0")


def test_nan_inside_init_s_and_a_teacher(built, tmp_path, run_stage):
    """Was: a NaN weight inside an --init_s checkpoint was accepted. Now: refused at load naming the file;
    the same for a teacher checkpoint."""
    ckpt = load_checkpoint(built["teacher"])
    ckpt["model"]["fc.weight"][0, 0] = float("nan")
    bad = tmp_path / "nan" / "resnet8_best.pth"
    save_torch(ckpt, bad)
    code, _, err = run_stage(train_teacher.main, BASE + ["--epochs", "1", "--num_workers", "0", "--init_s", str(bad),
                                                         "--run_dir", str(tmp_path / "t")])
    one_line(code, err, "--init_s checkpoint", str(bad), "NaN or infinite values in fc.weight")
    code, _, err = run_stage(train_student.main, DIGITS + ["--path_t", str(bad), "--model_s", "resnet8",
                                                           "--run_dir", str(tmp_path / "s")])
    one_line(code, err, str(bad), "NaN or infinite values")
    assert not (tmp_path / "t").exists() and not (tmp_path / "s").exists()


def test_nce_k_above_the_training_set_is_clipped(built, tmp_path, monkeypatch, run_stage):
    """Was: --nce_k 100000 on 1,437 images ran ~6 minutes per epoch without a word. Decision: clipped to the
    training set's size with a one-line warning; config.yaml records the value used."""
    run = tmp_path / "crd"
    code, out, err = run_stage(train_student.main, DIGITS + ["--path_t", str(built["teacher"]), "--model_s", "resnet8",
                                                             "--distill", "crd", "--nce_k", "100000", "--epochs", "1",
                                                             "--run_dir", str(run), "--max_steps", "1"])
    assert code == 0, err
    assert "warning: --nce_k 100000 is more than the 1437 training images" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["nce_k"] == 1437


# ----------------------------------------------------------------------------- 3. YAML at the command line
def test_duplicate_yaml_keys_alias_bomb_and_binary_config(tmp_path, run_stage):
    """Was: lr twice silently took the second; 283 bytes of nested aliases made a 157 MB error line and
    5.5 GB of memory; a binary --config said "'utf-8' codec can't decode byte 0xff". Now: one short line each."""
    run = tmp_path / "r"
    argv = BASE + ["--epochs", "1", "--num_workers", "0", "--run_dir", str(run), "--config"]
    dup = tmp_path / "dup.yaml"
    dup.write_text("lr: 0.1\nepochs: 1\nlr: 0.5\n")
    code, _, err = run_stage(train_teacher.main, argv + [str(dup)])
    one_line(code, err, str(dup), "line 3", "key 'lr' appears twice")
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]")
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 400
    tracemalloc.start()
    t0 = time.perf_counter()
    code, _, err = run_stage(train_teacher.main, argv + [str(bomb)])
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    line = one_line(code, err, str(bomb), "anchors and aliases are not accepted")
    assert len(line) < 400 and seconds < 5 and peak < 50 * 2**20, (len(line), seconds, peak)
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 64)
    code, _, err = run_stage(train_teacher.main, argv + [str(binary)])
    one_line(code, err, str(binary), "is not UTF-8 text (byte 0xff at offset 0)")
    assert not run.exists()


def test_every_yaml_read_goes_through_the_floor(repo_root):
    hits = []
    for path in Path(repo_root).rglob("*.py"):
        if any(part in ("tests", ".venv", "topkd_io") for part in path.parts):
            continue
        text = path.read_text()
        for needle in ("yaml.safe_load", "yaml.load(", "yaml.full_load", "yaml.unsafe_load"):
            if needle in text:
                hits.append(f"{path.relative_to(repo_root)}: {needle}")
    assert not hits, hits


# ----------------------------------------------------------------------------- 4. every failure in one line
def _no_temps(folder):
    return not [f for f in os.listdir(folder) if f.endswith(".tmp")]


def test_enospc_inside_torch_save_and_amp_on_the_cpu(built, tmp_path, monkeypatch, run_stage):
    """Was: RuntimeError: [enforce fail at inline_container.cc:672] from the teacher, student and RipsNet
    stages; --amp on the CPU silently ignored with config.yaml saying amp: true. Now: the usual one-line
    disk error, the previous checkpoint kept; --amp on the CPU gives one note and config.yaml says false."""
    teacher = tmp_path / "teacher"
    t_argv = BASE + ["--num_workers", "0", "--run_dir", str(teacher), "--max_steps", "1"]
    code, out, err = run_stage(train_teacher.main, t_argv + ["--epochs", "1", "--amp"])
    assert code == 0, err
    assert "--amp is ignored on cpu (CUDA only): training runs in float32" in out
    assert yaml.safe_load((teacher / "config.yaml").read_text())["amp"] is False
    student = tmp_path / "student"
    s_argv = DIGITS + ["--path_t", str(teacher / "resnet8_best.pth"), "--model_s", "resnet8", "--run_dir",
                       str(student), "--max_steps", "1"]
    assert run_stage(train_student.main, s_argv + ["--epochs", "1"])[0] == 0
    rips = tmp_path / "rips"
    assert run_stage(stage3.main, stage3_argv(built["s2"], rips))[0] == 0
    monkeypatch.setattr(torch, "save", zip_writer_full(lambda obj: obj.get("epoch") == 2
                                                        or obj.get("trainer", {}).get("epoch") == 2))
    for main, argv, last in ((train_teacher.main, t_argv + ["--epochs", "2", "--resume"], teacher / "resnet8_last.pth"),
                             (train_student.main, s_argv + ["--epochs", "2", "--resume"], student / "resnet8_last.pth"),
                             (stage3.main, stage3_argv(built["s2"], rips) + ["--epochs", "2", "--resume"],
                              rips / "mean_last.pth")):
        before = last.read_bytes()
        code, _, err = run_stage(main, argv)
        one_line(code, err, "No space left on device", str(last.parent), "disk is full")
        assert last.read_bytes() == before and _no_temps(last.parent)


def test_raw_messages_name_their_file_or_flag(built, tmp_path, run_stage):
    """Was: `mmap length is greater than file size`, a run_dir with invalid UTF-8 (`'utf-8' codec can't
    encode`), 1e300 coordinates (`could not broadcast ...`). Now: one line naming the file or flag."""
    # a cut stage-2 image file read without checksums (--no_verify): named, "cut short"
    folder = tmp_path / "s2"
    shutil.copytree(built["s2"], folder)
    pi = folder / "pi_dim0.npy"
    size = pi.stat().st_size
    with open(pi, "r+b") as f:
        f.truncate(size - 800)

    def shorter(data):  # the record agrees with the cut file (a writer that recorded what it had)
        data["pi"][0]["size"] = size - 800

    edit_yaml(folder / "manifest.yaml", shorter, reseal=True)
    code, _, err = run_stage(stage3.main, stage3_argv(folder, tmp_path / "r") + ["--no_verify"])
    line = one_line(code, err, str(pi), "shorter than its header says")
    assert "mmap length" not in line
    # a run folder whose name is not UTF-8
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/run\xff")
    code, _, err = run_stage(train_teacher.main, BASE + ["--epochs", "1", "--run_dir", bad])
    one_line(code, err, "--run_dir", "is not valid UTF-8 text (byte 0xff)")
    code, _, err = run_stage(stage3.main, ["--data_dir", str(built["s2"]), "--run_dir", bad])
    one_line(code, err, "--run_dir", "not valid UTF-8")
    # coordinates of 1e300 in --pcd clouds
    clouds = np.random.default_rng(0).normal(size=(20, 12, 3))
    clouds[3, 2, 1] = 1e300
    np.save(tmp_path / "big.npy", clouds)
    code, _, err = run_stage(stage2.main, ["--pcd", str(tmp_path / "big.npy"), "--out_dir", str(tmp_path / "b"),
                                           "--no_progress"])
    one_line(code, err, "cloud 3", "beyond float32's range", f"--pcd file {tmp_path / 'big.npy'}")


def test_short_numpy_write_names_the_file(tmp_path, monkeypatch, capsys):
    """Was: `20480 requested and 992 written` (numpy's short write on a full disk: no errno, no file)."""
    from topkd_io import run_cli, save_npy

    target = tmp_path / "pcd_00000.npy"

    def short(f, arr, allow_pickle=False):
        f.write(b"\x93NUMPY")
        raise OSError("20480 requested and 992 written")

    monkeypatch.setattr(np, "save", short)
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: save_npy(target, np.zeros(4)))
    line = one_line(info.value.code, capsys.readouterr().err, str(target), "only part of the data was written")
    assert "20480" not in line and not target.exists() and _no_temps(tmp_path)


def test_resume_of_another_methods_checkpoint(built, tmp_path, monkeypatch, run_stage):
    """Was: `distiller state ... unexpected ['steps_done']`. Now: names the method that wrote it."""
    student = tmp_path / "kd"
    argv = DIGITS + ["--path_t", str(built["teacher"]), "--model_s", "resnet8", "--run_dir", str(student),
                     "--epochs", "1", "--max_steps", "1"]
    assert run_stage(train_student.main, argv)[0] == 0
    code, _, err = run_stage(train_teacher.main, BASE + ["--epochs", "2", "--num_workers", "0", "--run_dir",
                                                         str(tmp_path / "t"), "--resume",
                                                         str(student / "resnet8_last.pth")])
    line = one_line(code, err, "was written by --distill kd, not by a teacher run (train_teacher.py)")
    assert "steps_done" not in line


def test_stdout_to_dev_full_is_not_a_full_disk(built, tmp_path, monkeypatch, capsys):
    """Was: stdout sent to /dev/full got the "free disk / --save_dir" hint."""
    from topkd_io import run_cli

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    full = open("/dev/full", "w")
    monkeypatch.setattr(sys, "stdout", full)  # as `python generate_PCD_PI.py ... > /dev/full`
    with pytest.raises(SystemExit) as info:
        run_cli(stage2.main, ["--pcd", str(built["root"] / "clouds.npy"), "--out_dir", str(tmp_path / "d"),
                              "--shard_size", "20", "--no_progress"])
    assert sys.stdout is not full  # replaced by /dev/null: the flush at exit stays quiet
    monkeypatch.undo()
    line = one_line(info.value.code, capsys.readouterr().err,
                    "cannot write to standard output (No space left on device)")
    assert "--save_dir" not in line and "disk is full" not in line


# ----------------------------------------------------------------------------- 5. caches with other parameters
@pytest.mark.parametrize("layout", ["persim", "gudhi"])
def test_pi_cache_with_other_parameters(built, tmp_path, monkeypatch, run_stage, layout):
    """Was: a cache made with --layout gudhi or with non-default PI parameters could not be used by
    train_teacher/train_student at all. Now: --pi_cache takes it with the parameters its manifest records."""
    from datasets.pi_images import build_pi_cache, cache_folder, to_unit_tensor
    from datasets.bundle import with_transform
    from topology.image_pi import ImagePIParams

    params = ImagePIParams(resolution=12, bandwidth=0.02, layout=layout, quantize="none")
    root = tmp_path / "image_pi_other"
    for split, part in (("train", built["small"].train), ("test", built["small"].test)):
        build_pi_cache(with_transform(part, to_unit_tensor), cache_folder(root, "digits", split), "digits", split,
                       params=params, chunk_size=2048, dtype="float16")
    argv = DIGITS + ["--model", "resnet8", "--input", "pi", "--epochs", "1", "--run_dir", str(tmp_path / "t"),
                     "--max_steps", "1"]
    code, _, err = run_stage(train_teacher.main, argv + ["--pi_root", str(root)])
    one_line(code, err, "other parameters" if layout == "persim" else "layout 'gudhi'",
             f"pass --pi_cache {cache_folder(root, 'digits', 'train')}")
    code, out, err = run_stage(train_teacher.main, argv + ["--pi_cache", str(cache_folder(root, "digits", "train"))])
    assert code == 0, err
    assert load_checkpoint(tmp_path / "t" / "resnet8_last.pth")["in_channels"] == 6
    # the student side: TGD with the PI teacher just trained on that cache
    code, _, err = run_stage(train_student.main, DIGITS + [
        "--distill", "tgd", "--model_s", "resnet8", "--path_t", str(built["teacher"]), "--path_t2",
        str(tmp_path / "t" / "resnet8_best.pth"), "--pi_cache", str(root), "--epochs", "1", "--run_dir",
        str(tmp_path / "s"), "--max_steps", "1"])
    assert code == 0, err


# ----------------------------------------------------------------------------- 6. TGD's official normalisation
# Transcribed from TGD's data_loader_custom.py (github.com/jeunsom/TGD), get_cifar(): line 102 (normalizeT,
# the PI teacher's 6 channels) and line 104 (normalizeS, the images).
OFFICIAL_PI_MEAN = [0.05165074, 0.05487815, 0.06697452, 0.05165074, 0.05487815, 0.06697452]
OFFICIAL_PI_STD = [0.12468914, 0.12733056, 0.13768335, 0.12468914, 0.12733056, 0.13768335]
OFFICIAL_IMAGE_MEAN = [0.507, 0.487, 0.441]
OFFICIAL_IMAGE_STD = [0.267, 0.256, 0.276]


def _official(x, mean, std):
    """torchvision's Normalize as the official loader applies it, written out: (x - m) / s per channel."""
    return (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def test_tgd_inputs_are_normalised_as_the_official_loader(tmp_path, monkeypatch, capsys):
    """Under --distill tgd / --input pi / --recipe tgd the images (CIFAR-10 here) take the official loader's
    CIFAR-100 constants and the PIs its per-channel constants; --input_norm dataset keeps the old raw PIs
    and CIFAR-10 statistics. The device data path gives the same tensors."""
    import torchvision.datasets.cifar as tv_cifar

    from datasets import build_datasets
    from datasets.device_data import DeviceLoader
    from datasets.pi_images import attach_image_pis, build_pi_cache, cache_folder, pi_bundle, raw_images
    from datasets.transforms import CIFAR10_MEAN, CIFAR10_STD
    from engine.config import data_options, parse_config
    from datasets.keyed import KeyedItems, KeyedSampler
    from test_datasets import _write_cifar10

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    t_parser, s_parser = train_teacher.build_parser(), train_student.build_parser()
    assert parse_config(t_parser, ["--input", "pi", "--dataset", "cifar10"]).input_norm == "tgd"
    assert parse_config(t_parser, ["--recipe", "tgd", "--dataset", "cifar10"]).input_norm == "tgd"
    assert parse_config(t_parser, ["--dataset", "cifar10"]).input_norm == "dataset"
    assert parse_config(s_parser, ["--distill", "tgd", "--dataset", "cifar10"]).input_norm == "tgd"
    assert parse_config(s_parser, ["--distill", "tgd", "--dataset", "cifar10", "--input_norm", "dataset"]
                        ).input_norm == "dataset"
    raw = _write_cifar10(tmp_path, per_batch=6, n_test=6)["train"][0]
    for split in ("train", "test"):
        build_pi_cache(raw_images("cifar10", str(tmp_path), split), cache_folder(tmp_path / "pi", "cifar10", split),
                       "cifar10", split, chunk_size=16)
    cfg = parse_config(s_parser, ["--distill", "tgd", "--dataset", "cifar10"])
    data = build_datasets("cifar10", str(tmp_path), **data_options(cfg))
    image_hwc = torch.from_numpy(raw[4].reshape(3, 32, 32).astype(np.float32) / 255)
    torch.testing.assert_close(data.train[4][0], _official(image_hwc, OFFICIAL_IMAGE_MEAN, OFFICIAL_IMAGE_STD))
    old = build_datasets("cifar10", str(tmp_path), **data_options(parse_config(
        s_parser, ["--distill", "tgd", "--dataset", "cifar10", "--input_norm", "dataset"])))
    torch.testing.assert_close(old.train[4][0], _official(image_hwc, CIFAR10_MEAN, CIFAR10_STD))
    with_pi = attach_image_pis(data, tmp_path / "pi", input_norm="tgd")
    stored = np.load(tmp_path / "pi" / "cifar10_train" / "pi.npy")[4]
    level = torch.from_numpy(stored.astype(np.float32) / 255)  # ToTensor of the uint8 PNG
    torch.testing.assert_close(with_pi.train[4][3], _official(level, OFFICIAL_PI_MEAN, OFFICIAL_PI_STD))
    raw_pi = attach_image_pis(old, tmp_path / "pi", input_norm="dataset").train[4][3]
    torch.testing.assert_close(raw_pi, level)
    teacher_pis = pi_bundle(tmp_path / "pi", "cifar10", 10, input_norm="tgd")
    torch.testing.assert_close(teacher_pis.train[4][0], with_pi.train[4][3])
    assert teacher_pis.mean == tuple(OFFICIAL_PI_MEAN) and teacher_pis.std == tuple(OFFICIAL_PI_STD)
    # --data_on_device: the same tensors
    dev = torch.device("cpu")
    keyed = KeyedItems(with_pi.train, 3)
    sampler = KeyedSampler(torch.utils.data.DistributedSampler(range(len(keyed)), num_replicas=1, rank=0))
    sampler.set_epoch(1)
    cpu = list(torch.utils.data.DataLoader(keyed, batch_size=8, sampler=sampler))
    for a, b in zip(cpu, DeviceLoader(keyed, sampler, 8, dev)):
        for x, y in zip(a, b):
            torch.testing.assert_close(y, x, rtol=0, atol=1e-6)
    order = list(range(len(teacher_pis.test)))
    cpu = list(torch.utils.data.DataLoader(teacher_pis.test, batch_size=4, sampler=order))
    for a, b in zip(cpu, DeviceLoader(teacher_pis.test, order, 4, dev)):
        for x, y in zip(a, b):
            torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


def test_gram_term_under_the_official_normalisation(reference_dir):
    """The TGD similarity term on the same images and PIs (the 14 reference images, their official PIs),
    seeded paper networks (WRN-16-1 student, WRN-16-3 teachers), before and after the official loader's
    normalisation: printed, and different (the constants matter)."""
    import models
    from distiller import distiller_dict
    from datasets.transforms import CIFAR10_MEAN, CIFAR10_STD

    ref = np.load(reference_dir / "official_image_pi_reference.npz")
    images = torch.from_numpy(ref["images_hwc_uint8"]).permute(0, 3, 1, 2).float() / 255
    pis = torch.from_numpy(ref["pi_loader_uint8"]).float() / 255
    torch.manual_seed(0)
    student = models.model_dict["wrn_16_1"](num_classes=10)
    t1 = models.model_dict["wrn_16_3"](num_classes=10)
    t2 = models.model_dict["wrn_16_3"](num_classes=10, in_channels=6)
    tgd = distiller_dict["tgd"](student, t1, teacher2=t2).eval()
    student.train()  # as in training: the student's BN on batch statistics (teachers in eval mode)
    target = torch.zeros(len(images), dtype=torch.long)
    values = {}
    for name, x, p in (("raw", _official(images, CIFAR10_MEAN, CIFAR10_STD), pis),
                       ("official", _official(images, OFFICIAL_IMAGE_MEAN, OFFICIAL_IMAGE_STD),
                        _official(pis, OFFICIAL_PI_MEAN, OFFICIAL_PI_STD))):
        with torch.no_grad():
            values[name] = tgd.forward_train(x, target, pi=p)[1]["loss_sim"].item()
    print(f"\n[gram] TGD similarity term, raw k/255 PIs + CIFAR-10 statistics: {values['raw']:.2f}; "
          f"official loader normalisation: {values['official']:.2f}")
    assert abs(values["raw"] - values["official"]) > 1e-3 * values["raw"]
