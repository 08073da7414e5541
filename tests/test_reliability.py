"""Runs that can be trusted: exact resume after kill -9 with data-loader workers, hostile files and
options end in one line (never in code execution or a raw traceback), stage 2 repairs damaged folders,
non-finite data stops stage 3, files respect the umask.

Every probe here is a hostile input a user (or a colleague's file) can produce; each must end with
``error: <one line>`` (exit status 2) or, for the collector, a one-line note and a skipped file.
"""
import errno
import hashlib
import io
import os
import shlex
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import generate_PCD_PI as stage2
import train_ripsnet as stage3
import train_student
import train_teacher
from topkd_io import load_checkpoint, save_torch
from engine.config import parse_config
from helpers import dead_writer_temp, kill9_after, node_kind, one_line, special_node, weights_digest

ARCH = "resnet8"
BASE = ["--dataset", "digits", "--image_size", "8", "--batch_size", "64", "--device", "cpu", "--deterministic",
        "--print_freq", "1000", "--model", ARCH, "--seed", "7", "--lr_decay_epochs", "2", "--threads", "1"]




# ----------------------------------------------------------------------------- exact resume
@pytest.mark.slow
def test_kill9_resume_is_bit_exact_with_two_workers(tmp_path, repo_root):
    """kill -9 in epoch 2 of 2 with 2 persistent workers, resume with 2 workers: the weights equal a
    straight run's with 0 workers, bit for bit (items are keyed by (seed, epoch, index), so neither the
    worker count nor the restart changes any draw)."""
    part = tmp_path / "part"
    argv = BASE + ["--epochs", "2", "--num_workers", "2", "--run_dir", str(part)]
    kill9_after("train_teacher.py", argv, repo_root, "epoch 1/2")  # printed after epoch 1's checkpoint is on disk
    assert load_checkpoint(part / f"{ARCH}_last.pth")["epoch"] == 1  # killed before epoch 2 was saved
    resumed = train_teacher.main(argv + ["--resume"])
    assert resumed["epochs_run"] == 1
    straight = train_teacher.main(BASE + ["--epochs", "2", "--num_workers", "0", "--run_dir", str(tmp_path / "s0")])
    hashes = {name: weights_digest(tmp_path / name / f"{ARCH}_last.pth") for name in ("part", "s0")}
    print(f"\n[resume] weights sha256 (first 16): {hashes}")
    assert hashes["part"] == hashes["s0"], hashes
    assert resumed["last_acc"] == straight["last_acc"]


def test_keyed_items_do_not_disturb_the_training_stream():
    """Drawing an item in the main process (0 workers) leaves torch's, numpy's and python's generators
    where they were, and the same key always gives the same augmentation."""
    import random

    from datasets.keyed import KeyedItems

    class Draw(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return float(torch.rand(())), float(np.random.rand()), random.random()

    items = KeyedItems(Draw(), seed=3)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = (float(torch.rand(())), float(np.random.rand()), random.random())
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    first = items[(2, 1)]
    assert (float(torch.rand(())), float(np.random.rand()), random.random()) == expected
    assert items[(2, 1)] == first and items[(3, 1)] != first and items[(2, 0)] != first


# ----------------------------------------------------------------------------- malicious pickles
class Evil:
    """Unpickling this calls os.system (what a crafted checkpoint does)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, ("touch " + shlex.quote(self.marker),)


@pytest.fixture()
def hostile(tmp_path):
    """``(path of a crafted .pth, marker path it would create, a valid resnet8 digits checkpoint)``."""
    from models import build_model

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil" / f"{ARCH}_best.pth"
    evil.parent.mkdir()
    torch.save({"model": {"fc.weight": Evil(marker)}, "arch": ARCH}, evil)
    good = tmp_path / "good" / f"{ARCH}_best.pth"
    save_torch({"model": build_model(ARCH, num_classes=10).state_dict(), "arch": ARCH, "num_classes": 10},
                    str(good))
    return evil, marker, good


def test_crafted_checkpoints_never_run(hostile, tmp_path, run_stage):
    """Teacher, student, RipsNet, resume and figures loaders: one-line refusal, the payload never runs."""
    from tools import figures

    evil, marker, good = hostile
    data = ["--dataset", "digits", "--image_size", "8", "--num_workers", "0", "--device", "cpu"]
    probes = {
        "teacher": (train_student.main, data + ["--path_t", str(evil), "--run_dir", str(tmp_path / "s")]),
        "ripsnet": (train_student.main, data + ["--path_t", str(good), "-d", "1", "--rips_path", str(evil),
                                                "--run_dir", str(tmp_path / "s")]),
        "resume": (train_teacher.main, BASE + ["--epochs", "1", "--num_workers", "0", "--run_dir",
                                               str(tmp_path / "t"), "--resume", str(evil)]),
        "figures teacher": (figures.main, ["embedding", "--teacher", str(evil), "--student", str(good),
                                           "--out", str(tmp_path / "e.png")]),
        "student": (figures.main, ["embedding", "--teacher", str(good), "--student", str(evil),
                                   "--out", str(tmp_path / "e.png")]),
    }
    for name, (main, argv) in probes.items():
        code, _, err = run_stage(main, argv)
        one_line(code, err, str(evil), "refusing to unpickle")
        assert not marker.exists(), f"{name}: the crafted file ran code"


def test_collector_skips_a_crafted_checkpoint(hostile, tmp_path, capsys):
    from tools import collect_results

    evil, marker, _ = hostile
    (evil.parent / "config.yaml").write_text(yaml.safe_dump({"model": ARCH, "dataset": "digits", "epochs": 1}))
    collect_results.main([str(evil.parent.parent), "--out", str(tmp_path / "table")])
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if str(evil) in line]
    assert len(notes) == 1 and "refusing to unpickle" in notes[0], err
    assert not marker.exists()


# ----------------------------------------------------------------------------- typed YAML
@pytest.mark.parametrize("body, words", [
    ('deterministic: "false"', ["deterministic", "true or false"]),
    ("epochs: true", ["epochs", "integer"]),
    ("epochs: 2.5", ["epochs", "integer"]),
    ("lr: fast", ["lr", "number"]),
    ("device: gpu", ["device", "auto, cpu, cuda"]),
    ("dataset: 10", ["dataset", "text"]),
    ("learning_rate: 0.1", ["learning_rate", "unknown"]),
    ("epochs: [1, 2]", ["epochs", "single value"]),
    ("epochs: 3\n lr: [", ["line 2"]),
])
def test_yaml_values_are_typed(tmp_path, run_stage, body, words):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(body + "\n")
    code, _, err = run_stage(train_teacher.main, BASE + ["--config", str(cfg), "--run_dir", str(tmp_path / "r")])
    one_line(code, err, str(cfg), *words)
    assert not (tmp_path / "r").exists()


def test_yaml_values_take_the_flag_types(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("lr: 1\ndeterministic: false\nlr_decay_epochs: [3, 5]\nepochs: 4\nseed: '5'\n")
    out = parse_config(train_teacher.build_parser(), ["--config", str(cfg), "--dataset", "digits"])
    assert (out.lr, out.deterministic, out.lr_decay_epochs, out.epochs, out.seed) == (1.0, False, [3, 5], 4, 5)
    assert isinstance(out.lr, float) and isinstance(out.seed, int)


def test_a_yaml_value_is_never_read_as_a_flag(tmp_path, run_stage):
    """`lr_decay_epochs: ["1", "--lr", "5"]` in a --config file trained with lr 5.0: the list was spliced into
    the command line. A YAML value is now only a value of its own option."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text('lr_decay_epochs: ["1", "--lr", "5"]\n')
    argv = BASE + ["--config", str(cfg), "--epochs", "1", "--num_workers", "0", "--run_dir", str(tmp_path / "r")]
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        parse_config(train_teacher.build_parser(), argv)
    code, _, err = run_stage(train_teacher.main, argv)
    one_line(code, err, str(cfg), "option lr_decay_epochs", "--lr")
    cfg.write_text('data_root: "--lr=5"\nresume: "--lr"\n')  # text stays text, whatever it looks like
    out = parse_config(train_teacher.build_parser(), ["--config", str(cfg)])
    assert (out.data_root, out.resume, out.lr) == ("--lr=5", "--lr", 0.05)
    assert not (tmp_path / "r").exists()


def test_deeply_nested_yaml_is_one_line(tmp_path, run_stage):
    """A --config value nested 20,000 brackets deep ended in a RecursionError traceback."""
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("lr_decay_epochs: " + "[" * 20000 + "]" * 20000 + "\n")
    code, _, err = run_stage(train_teacher.main, BASE + ["--config", str(cfg), "--run_dir", str(tmp_path / "r")])
    one_line(code, err, str(cfg), "nested more than 50 levels deep")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- resume with changed options
def test_resume_refuses_changes_unless_overridden(tmp_path, run_stage, capsys):
    run = tmp_path / "run"
    common = BASE + ["--num_workers", "0", "--run_dir", str(run)]
    train_teacher.main(common + ["--epochs", "1"])
    code, _, err = run_stage(train_teacher.main, common + ["--epochs", "2", "--lr", "0.5", "--momentum", "0",
                                                           "--resume"])
    one_line(code, err, "lr 0.05 -> 0.5", "momentum 0.9 -> 0.0", "--resume_override")
    assert yaml.safe_load((run / "config.yaml").read_text())["lr"] == 0.05  # nothing rewritten
    train_teacher.main(common + ["--epochs", "2", "--lr", "0.5", "--momentum", "0", "--weight_decay", "0.1",
                                 "--resume", "--resume_override"])
    out = capsys.readouterr().out
    assert "--epochs changed from 1 to 2 at epoch 2" in out and "from epoch 2: lr 0.05 -> 0.5" in out
    ckpt = load_checkpoint(run / f"{ARCH}_last.pth")
    group = ckpt["optimizer"]["param_groups"][0]
    # the milestone at epoch 2 has passed after epoch 2: 0.5 * 0.1
    assert (group["momentum"], group["weight_decay"]) == (0.0, 0.1)
    assert group["lr"] == pytest.approx(0.05) and group["initial_lr"] == 0.5
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert (stored["lr"], stored["momentum"], stored["epochs"]) == (0.5, 0.0, 2)
    assert stored["resume_history"] == [{"epoch": 2, "changes": {"lr": [0.05, 0.5], "momentum": [0.9, 0.0],
                                                                 "weight_decay": [0.0005, 0.1]}}]
    code, _, err = run_stage(train_teacher.main, common + ["--epochs", "1", "--lr", "0.5", "--momentum", "0",
                                                           "--weight_decay", "0.1", "--resume"])
    one_line(code, err, "already trained 2 epochs", "--epochs 1")
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2


# ----------------------------------------------------------------------------- stage 2 / stage 3 data
@pytest.fixture()
def pcd_folder(tmp_path):
    rng = np.random.default_rng(0)
    clouds = (rng.normal(size=(60, 12, 3)) * rng.uniform(0.3, 2.0, size=(60, 1, 1))).astype(np.float32)
    np.save(tmp_path / "clouds.npy", clouds)
    argv = ["--pcd", str(tmp_path / "clouds.npy"), "--out_dir", str(tmp_path / "data"), "--shard_size", "20",
            "--no_progress"]
    stage2.main(argv)
    return tmp_path / "data", argv


def test_stage2_rebuilds_missing_and_damaged_shards(pcd_folder, capsys):
    folder, argv = pcd_folder
    shards = folder / "shards"
    before = {p.name: p.read_bytes() for p in shards.iterdir()}
    images = (folder / "pi_dim0.npy").read_bytes()
    (shards / "pcd_00001.npy").unlink()
    damaged = bytearray(before["pd_dim0_00002.npz"])
    damaged[-40] ^= 0xFF  # same size, other content: only the checksum notices
    (shards / "pd_dim0_00002.npz").write_bytes(bytes(damaged))
    capsys.readouterr()
    manifest = stage2.main(argv)
    out = capsys.readouterr().out
    assert "pcd_00001.npy is missing" in out and "pd_dim0_00002.npz does not match the SHA-256" in out
    assert manifest["complete"] and "stage 2 done" in out
    assert sorted(p.name for p in shards.iterdir()) == sorted(before)
    assert (shards / "pcd_00001.npy").read_bytes() == before["pcd_00001.npy"]
    with np.load(shards / "pd_dim0_00002.npz") as now, np.load(io.BytesIO(before["pd_dim0_00002.npz"])) as then:
        assert all(np.array_equal(now[k], then[k]) for k in ("rows", "counts"))  # zip timestamps may differ
    assert (folder / "pi_dim0.npy").read_bytes() == images
    stage2.main(argv)  # intact now: nothing rebuilt
    assert "rebuilding" not in capsys.readouterr().out


def test_stage3_stops_on_non_finite_data(pcd_folder, tmp_path, run_stage):
    folder, _ = pcd_folder
    run = tmp_path / "rips"
    common = ["--data_dir", str(folder), "--run_dir", str(run), "--no_progress",
              "--units", "3,8,8,8,50,100,200,400", "--seed", "0"]
    stage3.main(common + ["--epochs", "1"])
    last = (run / "mean_last.pth").read_bytes()
    # NaN clouds: stopped at epoch 2 with the last good checkpoint kept (with --no_verify: otherwise the
    # shard's SHA-256 refuses the edited file before training, tests/test_integrity.py)
    shard = folder / "shards" / "pcd_00000.npy"
    clouds = np.load(shard)
    clouds[:] = np.nan
    np.save(shard, clouds)
    code, _, err = run_stage(stage3.main, common + ["--epochs", "2", "--resume", "--no_verify"])
    one_line(code, err, "epoch 2, step 1", "non-finite values in the point clouds", str(run / "mean_last.pth"))
    assert (run / "mean_last.pth").read_bytes() == last
    # NaN target images: refused when the folder is opened, naming the file
    images = np.load(folder / "pi_dim0.npy")
    images[5, 3] = np.nan
    np.save(folder / "pi_dim0.npy", images)
    code, _, err = run_stage(stage3.main, common + ["--epochs", "2", "--run_dir", str(tmp_path / "r2"), "--no_verify"])
    one_line(code, err, "pi_dim0.npy", "non-finite values in 1 persistence image", "cloud 5")


def test_stage3_resume_rule(pcd_folder, tmp_path, run_stage, capsys):
    folder, _ = pcd_folder
    run = tmp_path / "rips"
    common = ["--data_dir", str(folder), "--run_dir", str(run), "--no_progress", "--units", "3,8,8,8,50,100,200,400"]
    stage3.main(common + ["--epochs", "1"])
    stale = dead_writer_temp(run / "mean_last.pth")
    open(stale, "wb").write(b"half")  # a kill during a write
    code, _, err = run_stage(stage3.main, common + ["--epochs", "2", "--lr", "0.01", "--resume"])
    one_line(code, err, "lr 0.0005 -> 0.01", "--resume_override")
    stage3.main(common + ["--epochs", "2", "--lr", "0.01", "--resume", "--resume_override"])
    assert "from epoch 2: lr 0.0005 -> 0.01" in capsys.readouterr().out
    ckpt = load_checkpoint(run / "mean_last.pth")
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == 0.01 and ckpt["trainer"]["epoch"] == 2
    assert ckpt["config"]["resume_history"] == [{"epoch": 2, "changes": {"lr": [0.0005, 0.01]}}]
    assert not os.path.exists(stale)


# ----------------------------------------------------------------------------- the former tracebacks
def test_former_tracebacks_are_one_line(tmp_path, run_stage, pcd_folder):
    import generate_image_PI
    from tools import collect_results, figures

    afile = tmp_path / "afile"
    afile.write_text("x")
    folder, _ = pcd_folder
    teacher = BASE + ["--epochs", "1", "--num_workers", "0"]
    np.save(tmp_path / "flat.npy", np.zeros((5, 16, 0), np.float32))
    cases = [
        (train_teacher.main, teacher + ["--save_dir", str(afile)], ["--save_dir", str(afile), "is a file"]),
        (train_teacher.main, teacher + ["--run_dir", str(afile)], ["--run_dir", str(afile), "is a file"]),
        (train_teacher.main, teacher + ["--run_dir", str(afile / "sub")], ["--run_dir", "cannot create"]),
        (stage2.main, ["--pcd", str(tmp_path / "flat.npy"), "--out_dir", str(afile)], ["--out_dir", "is a file"]),
        (stage2.main, ["--pcd", str(tmp_path / "flat.npy"), "--out_dir", str(tmp_path / "o")], ["D=0", "[5, 16, 0]"]),
        (collect_results.main, [str(tmp_path), "--out", str(afile / "t")], ["--out", str(afile), "is a file"]),
        (stage3.main, ["--data_dir", str(folder), "--run_dir", str(tmp_path / "u"), "--units", "3,8,8,8,50,100,200,100"],
         ["--units", "ending with the image size 400"]),
        (stage3.main, ["--data_dir", str(folder), "--run_dir", str(afile)], ["--run_dir", "is a file"]),
        (stage2.main, ["--pcd", str(tmp_path / "clouds.npy"), "--out_dir", str(tmp_path / "o2"), "--shard_size", "0"],
         ["--shard_size", "positive"]),
        (figures.main, ["curves", str(tmp_path), "--out", str(afile / "c.png")], ["--out", "is a file"]),
        (generate_image_PI.main, ["--dataset", "digits", "--out", str(afile)], ["--out", str(afile), "is a file"]),
    ]
    if sys.platform.startswith("linux") and os.path.isdir("/sys"):  # sysfs refuses new folders, even to root
        cases.append((train_teacher.main, teacher + ["--save_dir", "/sys/topkd_probe"],
                      ["--save_dir", "/sys/topkd_probe", "cannot create"]))
    for main, argv, words in cases:
        one_line(*run_stage(main, argv)[::2], *words)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_run_dir(tmp_path, run_stage):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = run_stage(train_teacher.main, BASE + ["--epochs", "1", "--num_workers", "0",
                                                             "--run_dir", str(ro)])
        one_line(code, err, "--run_dir", "not writable")
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("kind", ["device", "fifo", "socket"])
def test_out_at_a_device_fifo_or_socket_is_refused(tmp_path, run_stage, kind):
    """`evaluate.py CKPT --out /dev/full` run as root replaced the device with a regular file (a FIFO or a socket
    likewise). Now one line naming the path, and the node is still there. (A folder as --out holds the result
    file: tests/test_evaluate.py.)"""
    import evaluate
    from models import build_model

    ckpt = tmp_path / "resnet8_best.pth"
    save_torch({"model": build_model(ARCH, num_classes=10).state_dict(), "arch": ARCH, "num_classes": 10}, ckpt)
    out = tmp_path / "node"
    close = special_node(out, kind)
    try:
        before = node_kind(out)
        code, _, err = run_stage(evaluate.main, [str(ckpt), "--dataset", "digits", "--image_size", "8",
                                                 "--device", "cpu", "--out", str(out)])
        one_line(code, err, str(out), "not a regular file")
        assert node_kind(out) == before
    finally:
        close()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """Checkpoint and shard writes hitting ENOSPC (a real one: the file is /dev/full) -> one line naming
    the file; no temporary left behind."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    import topkd_io.write as atomic
    from topkd_io import AtomicNpyWriter
    from topkd_io import run_cli, save_npy, save_torch

    def full_disk(path):  # the temporary file is a link to /dev/full: every write fails with ENOSPC
        tmp = str(path) + ".full.tmp"
        os.symlink("/dev/full", tmp)
        return os.open(tmp, os.O_WRONLY), tmp

    def streamed(p):
        writer = AtomicNpyWriter(str(p), (64, 4096))
        for _ in range(64):
            writer.write(np.zeros((1, 4096), np.float32))
        writer.commit()

    monkeypatch.setattr(atomic, "open_temp", full_disk)
    writes = {tmp_path / "resnet8_last.pth": lambda p: save_torch({"w": torch.zeros(4096)}, str(p)),
              tmp_path / "pcd_00000.npy": lambda p: save_npy(str(p), np.zeros((64, 64), np.float32)),
              tmp_path / "pi_dim0.npy": streamed}
    for path, write in writes.items():
        with pytest.raises(SystemExit) as info:
            run_cli(write, path)
        one_line(info.value.code, capsys.readouterr().err, "No space left on device", str(path), "disk is full")
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_a_genuine_bug_keeps_its_traceback():
    from topkd_io import run_cli

    def buggy():
        return [][1]

    with pytest.raises(IndexError):
        run_cli(buggy)

    def enospc():
        raise OSError(errno.ENOSPC, "No space left on device", "/x/a.pth")

    with pytest.raises(SystemExit) as info:
        run_cli(enospc)
    assert info.value.code == 2


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_follow_the_umask_and_stale_temps_go(tmp_path, mask, mode):
    from topkd_io import save_npy as atomic_save_npy
    from topkd_io.write import host_tag
    from topology.ripsnet import RipsNet, save_ripsnet

    stale = [dead_writer_temp(tmp_path / name) for name in ("a.pth", "b.npy", "mean_best.pth")]
    for path in stale:
        open(path, "wb").write(b"half a file")
    live = tmp_path / f"a.pth.{host_tag()}.{os.getpid()}.zz.tmp"  # a live writer's temporary: left alone
    unowned = tmp_path / "b.npy.zz.tmp"  # no owner named: left alone
    other = tmp_path / "c.pth.zz.tmp"  # another file's temporary: left alone
    for path in (live, unowned, other):
        path.write_bytes(b"x")
    old = os.umask(mask)
    try:
        save_torch({"x": torch.zeros(2)}, str(tmp_path / "a.pth"))
        atomic_save_npy(str(tmp_path / "b.npy"), np.zeros(3))
        save_ripsnet(RipsNet(16, pooling="mean"), str(tmp_path / "mean_best.pth"))
    finally:
        os.umask(old)
    for name in ("a.pth", "b.npy", "mean_best.pth"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    assert not any(os.path.exists(p) for p in stale)
    assert live.exists() and unowned.exists() and other.exists()


# ----------------------------------------------------------------------------- a run folder belongs to one run
def test_a_second_run_into_a_busy_folder_is_refused(tmp_path, repo_root, run_stage):
    """Two train_teacher.py runs into one --run_dir, 0.5 s apart, both exited 0 naming the same checkpoint
    (the first run's result was lost). Now the second is refused with one line naming the first's PID and
    the lock file. The test waits for the first run's own word that it holds the folder (no timing)."""
    run_dir = tmp_path / "shared"
    argv = BASE + ["--epochs", "1000", "--num_workers", "0", "--run_dir", str(run_dir)]
    proc = subprocess.Popen([sys.executable, "train_teacher.py"] + argv, cwd=repo_root,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:  # the trainer logs its run folder once the folder is claimed (locked)
            if line.startswith("run folder "):
                break
        else:
            pytest.fail(f"the first run ended (status {proc.wait()}) before it took its folder")
        code, _, err = run_stage(train_teacher.main, argv)
        one_line(code, err, str(run_dir), "in use by", f"PID {proc.pid}", "train_teacher.py",
                 str(run_dir / ".topkd.lock"))
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert not (run_dir / "tb").is_dir() or len(os.listdir(run_dir / "tb")) == 1  # only the first run's events


def test_no_stage_writes_into_its_inputs_folder_or_over_a_finished_run(tmp_path, run_stage):
    """`train_student.py --path_t R/x/resnet8_best.pth --run_dir R/x` overwrote its own teacher with the student,
    and a fresh run in a finished folder overwrote it."""
    summary = train_teacher.main(BASE + ["--epochs", "1", "--num_workers", "0", "--save_dir", str(tmp_path)])
    teacher = summary["best_checkpoint"]
    folder = os.path.dirname(teacher)
    before = {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
              for name in os.listdir(folder) if name.endswith(".pth")}
    student = ["--dataset", "digits", "--image_size", "8", "--device", "cpu", "--num_workers", "0", "--epochs", "1",
               "--model_s", "resnet8", "--path_t", teacher, "--run_dir", folder]
    one_line(*run_stage(train_student.main, student)[::2], "--run_dir", "own input --path_t", "never writes")
    one_line(*run_stage(stage2.main, ["--path_t", teacher, "--out_dir", folder, "--dataset", "digits"])[::2],
             "--out_dir", "own input --path_t")
    # the teacher's own command again, into its finished folder
    one_line(*run_stage(train_teacher.main, BASE + ["--epochs", "1", "--num_workers", "0", "--run_dir", folder])[::2],
             "holds a finished run of these settings", "--overwrite")
    after = {name: hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest()
             for name in os.listdir(folder) if name.endswith(".pth")}
    assert after == before


def test_quickstart_refuses_a_foreign_folder(tmp_path, run_stage):
    """`tools/quickstart.py --out DIR` deleted unrelated files already in DIR."""
    from tools import quickstart

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    one_line(*run_stage(quickstart.main, ["--fast", "--out", str(foreign)])[::2], "--out", "notes.txt",
             "did not write")
    assert (foreign / "notes.txt").read_text() == "keep me"
    made = tmp_path / "made"  # a folder an earlier quickstart made may be replaced
    made.mkdir()
    (made / quickstart.MARKER).write_text("")
    (made / "results.md").write_text("old")
    quickstart.check_out_folder(made)
