"""The file floor (`topkd_io`): one atomic writer under every file the stages write, safe YAML, checksums,
folder locks. Each writer of the project is driven through a simulated crash."""
import errno
import json
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import topkd_io.write as atomic
from helpers import dead_writer_temp, node_kind, special_node, zip_writer_full
from topkd_io import (DamagedFileError, FolderLock, TopKDError, atomic_write, read_yaml, run_cli, save_torch,
                      verify_file, write_yaml)
from topkd_io import file_record


def _writers(tmp_path):
    """name -> (target path, function writing it): every atomic writer of the project."""
    import argparse

    from datasets.pi_images import build_pi_cache
    from engine.config import write_config
    from pcd.manifest import write_manifest
    from topkd_io import AtomicNpyWriter
    from topkd_io import save_npy, save_npz
    from topology.image_pi import ImagePIParams
    from topology.point_cloud_pi import PIParams
    from topology.ripsnet import RipsNet, save_ripsnet

    def streamed(path):
        writer = AtomicNpyWriter(str(path), (4, 3))
        writer.write(np.ones((4, 3)))
        writer.commit()

    def pi_cache(path):
        images = [(torch.rand(1, 8, 8), k % 2) for k in range(3)]
        build_pi_cache(images, path.parent, "tiny", "train", ImagePIParams(), chunk_size=8, overwrite=True)

    params = PIParams(bandwidth=0.1, im_range=(0.0, 1.0, 0.0, 1.0))
    return {
        "checkpoint": (tmp_path / "ckpt" / "m_last.pth", lambda p: save_torch({"w": torch.ones(3)}, p)),
        "ripsnet": (tmp_path / "rips" / "mean_best.pth", lambda p: save_ripsnet(RipsNet(16), p)),
        "config": (tmp_path / "run" / "config.yaml", lambda p: write_config(argparse.Namespace(lr=0.1), p)),
        "pi_params": (tmp_path / "pi" / "params.yaml", lambda p: params.save_yaml(p)),
        "stage2_manifest": (tmp_path / "s2" / "manifest.yaml", lambda p: write_manifest(str(p.parent), {"a": 1})),
        "stage2_shard": (tmp_path / "s2" / "pcd_00000.npy", lambda p: save_npy(p, np.ones((2, 3)))),
        "stage2_diagrams": (tmp_path / "s2" / "pd_dim0_00000.npz", lambda p: save_npz(p, rows=np.ones((2, 2)))),
        "stage2_images": (tmp_path / "s2" / "pi_dim0.npy", streamed),
        "image_pi_manifest": (tmp_path / "tiny_train" / "manifest.yaml", pi_cache),
    }


WRITERS = ["checkpoint", "ripsnet", "config", "pi_params", "stage2_manifest", "stage2_shard", "stage2_diagrams",
           "stage2_images", "image_pi_manifest"]


@pytest.mark.parametrize("name", WRITERS)
def test_every_writer_goes_through_the_floor(tmp_path, monkeypatch, name):
    """Each writer: the data is fsynced before the rename; a crash before the rename leaves the previous
    file as it was and no temporary; a temporary of a killed writer is removed by the next write."""
    path, write = _writers(tmp_path)[name]
    write(path)

    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    stale = dead_writer_temp(path)
    open(stale, "wb").write(b"half")
    write(path)
    assert any(p.startswith(str(path) + ".") and p.endswith(".tmp") for p in synced), synced
    assert not os.path.exists(stale)
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError) as info:
        write(path)
    assert str(path) in str(info.value.filename or "") or str(path) in str(info.value)
    assert path.read_bytes() == before
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]


def test_torch_zip_writer_failure_is_an_oserror_naming_the_file(tmp_path, monkeypatch, capsys):
    """torch.save's zip writer reports a full disk as RuntimeError('[enforce fail at inline_container.cc...]'):
    it becomes the usual one-line error and the previous checkpoint is kept."""
    path = tmp_path / "resnet8_last.pth"
    save_torch({"epoch": 1}, path)

    monkeypatch.setattr(torch, "save", zip_writer_full())
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: save_torch({"epoch": 2}, path))
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1, err
    assert "No space left on device" in err[0] and str(path) in err[0] and "disk is full" in err[0]
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert os.listdir(tmp_path) == ["resnet8_last.pth"]


def test_atomic_write_text_and_manual_commit(tmp_path):
    with atomic_write(tmp_path / "a.txt", "w") as f:
        f.write("hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    w = atomic_write(tmp_path / "b.bin")
    w.file.write(b"x")
    w.abort()
    assert not (tmp_path / "b.bin").exists() and os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("name", WRITERS)
def test_no_writer_replaces_a_fifo(tmp_path, name):
    """The atomic writer renamed its temporary over whatever the path named: a FIFO (or a device) became a
    regular file. Every writer now refuses it in one line naming the path, and the FIFO stays."""
    path, write = _writers(tmp_path)[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    with pytest.raises(ValueError) as info:
        write(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "FIFO" in message, message
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "socket"])
def test_atomic_write_refuses_what_is_not_a_regular_file(tmp_path, kind):
    path = tmp_path / "out.yaml"
    close = special_node(path, kind)
    try:
        before = node_kind(path)
        with pytest.raises(ValueError, match=f"{path} is a .*not a regular file"):
            write_yaml(path, {"a": 1})
        link = tmp_path / "link.yaml"  # a link to it is refused just the same
        link.symlink_to(path)
        with pytest.raises(ValueError, match="not a regular file"):
            write_yaml(link, {"a": 1})
        assert node_kind(path) == before and link.is_symlink()
    finally:
        close()
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_atomic_write_through_a_link_writes_the_file_it_names(tmp_path):
    """A link to a regular file is written through (as open() does), not replaced by a file: the link stays."""
    target = tmp_path / "runs" / "eval.yaml"
    target.parent.mkdir()
    target.write_text("old: 1\n")
    link = tmp_path / "latest.yaml"
    link.symlink_to(target)
    write_yaml(link, {"new": 2})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert read_yaml(target) == {"new": 2}
    assert sorted(os.listdir(target.parent)) == ["eval.yaml"]


# ----------------------------------------------------------------------------- YAML
@pytest.mark.parametrize("text, words", [
    ("lr: 0.1\nepochs: 3\nlr: 0.2\n", ["line 3", "'lr' appears twice"]),
    ("a: &x [1, 2]\nb: *x\n", ["alias *x", "not accepted"]),
    ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
     'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n', ["alias *a"]),
    ("a: [1, 2\n", ["not valid YAML"]),
    ("a: " + "[" * 60 + "]" * 60 + "\n", ["line 1", "nested more than 50 levels deep"]),
    ("a: " + "{b: " * 20000 + "1" + "}" * 20000 + "\n", ["nested more than 50 levels deep"]),
])
def test_read_yaml_refuses_duplicates_aliases_and_bad_text(tmp_path, text, words):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_yaml(path, "config file")
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and str(path) in message
    for word in words:
        assert word in message, message


def test_read_yaml_non_utf8_names_the_file(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x02}q\x00\xff\xfe binary")
    with pytest.raises(ValueError, match=r"model.pth is not UTF-8 text \(byte 0x80 at offset 0\)"):
        read_yaml(path, "config file")


# ----------------------------------------------------------------------------- checksums
def test_verify_file_names_file_and_rebuild_command(tmp_path):
    path = tmp_path / "pcd_00000.npy"
    path.write_bytes(b"0123456789")
    record = file_record(path)
    verify_file(path, record)
    path.write_bytes(b"0123456788")  # same size, other bytes
    with pytest.raises(DamagedFileError, match=r"pcd_00000.npy does not match the SHA-256.*rebuild it with: make"):
        verify_file(path, record, rebuild="make")
    path.write_bytes(b"01234")
    with pytest.raises(DamagedFileError, match="has 5 bytes, its manifest records 10"):
        verify_file(path, record)
    path.unlink()
    with pytest.raises(DamagedFileError, match="is missing"):
        verify_file(path, record)
    path.write_bytes(b"0123456789")
    with pytest.raises(DamagedFileError, match="pcd_00000.npy has no recorded size and SHA-256"):
        verify_file(path, {})  # an empty record vouches for nothing


def test_streamed_npy_in_a_with_block(tmp_path):
    """`AtomicNpyWriter` in a ``with`` block: committed when the block ends; a failure inside it keeps the earlier
    file and leaves no temporary; a block ended short of the announced rows is refused."""
    from topkd_io import AtomicNpyWriter

    path = tmp_path / "pi_dim0.npy"
    with AtomicNpyWriter(str(path), (4, 3)) as writer:
        writer.write(np.ones((2, 3)))
        writer.write(np.zeros((2, 3)))
    np.testing.assert_array_equal(np.load(path), [[1] * 3] * 2 + [[0] * 3] * 2)
    with pytest.raises(KeyboardInterrupt), AtomicNpyWriter(str(path), (4, 3)) as writer:
        writer.write(np.full((2, 3), 7.0))
        raise KeyboardInterrupt
    with pytest.raises(ValueError, match="wrote 2 of 4 rows"), AtomicNpyWriter(str(path), (4, 3)) as writer:
        writer.write(np.full((2, 3), 7.0))
    assert np.load(path)[0, 0] == 1 and os.listdir(tmp_path) == ["pi_dim0.npy"]


# ----------------------------------------------------------------------------- folder locks
HOLDER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    from topkd_io import FolderLock
    with FolderLock({folder!r}):
        if os.fork() == 0:  # a child, as a DataLoader worker is, that outlives its parent
            sys.stdin.read()
            os._exit(0)
        print("held", flush=True)
        sys.stdin.read()  # held until the test closes our stdin
""")


def test_folder_lock_refuses_a_live_holder_and_clears_when_it_dies(tmp_path, repo_root):
    from topkd_io import lock_holder

    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(repo_root), folder=str(folder)),
                             "--marker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(TopKDError) as info:
            with FolderLock(folder, flag="--run_dir", what="run folder"):
                pass
        message = str(info.value)
        for word in (f"PID {proc.pid}", "--marker", "--run_dir", str(folder / ".topkd.lock")):
            assert word in message, message
        assert lock_holder(folder)["pid"] == proc.pid
        proc.kill()
        proc.wait()
        # the holder was killed (-9; its forked child still runs): the lock is free, whatever its file says
        assert lock_holder(folder) is None
        with FolderLock(folder) as lock:
            with FolderLock(folder):  # the same process may nest
                pass
            assert os.path.isfile(lock.path) and lock_holder(folder) is None  # our own lock is not someone else's
        assert not os.path.exists(lock.path)
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()  # the child ends
        proc.stdout.close()


@pytest.mark.parametrize("record", [
    {"pid": 1, "host": "this", "command": "python train_teacher.py", "started": "2026-01-01 00:00:00"},
    {"pid": 4242, "host": "0f1e2d", "command": "python train_teacher.py", "started": "2026-01-01 00:00:00"},
    "half a rec",
], ids=["recycled_pid", "another_host", "unreadable"])
def test_a_lock_no_live_process_holds_is_taken_without_a_word(tmp_path, capsys, caplog, record):
    """A lock file whose PID now belongs to another program (PID 1 here), one left by another host, or an
    unreadable one, was refused forever ("wait for it to finish"). Only a live holder counts now."""
    from topkd_io.write import host_tag

    folder = tmp_path / "run"
    folder.mkdir()
    if isinstance(record, dict) and record["host"] == "this":
        record = {**record, "host": host_tag()}
    (folder / ".topkd.lock").write_text(json.dumps(record) if isinstance(record, dict) else record)
    with FolderLock(folder, flag="--run_dir", what="run folder"):
        pass
    assert capsys.readouterr() == ("", "") and not caplog.records
    assert not (folder / ".topkd.lock").exists()


def test_run_cli_user_errors_environment_and_bugs(tmp_path, capsys, monkeypatch):
    """Our errors are ValueErrors said in one line, whatever the environment says (no hidden switch adds a
    traceback); an OSError is one line naming its file; Ctrl-C names how the stage at hand resumes."""
    from topkd_io import DivergedError

    assert issubclass(TopKDError, ValueError) and issubclass(DamagedFileError, TopKDError)
    assert issubclass(DivergedError, TopKDError) and issubclass(DivergedError, FloatingPointError)
    monkeypatch.setenv("TOPKD_DEBUG", "1")

    def damaged():
        raise DamagedFileError("shard.npy does not match\nits record")

    def missing():
        open(tmp_path / "absent.yaml")

    def interrupted():
        raise KeyboardInterrupt

    for call, code, line in ((damaged, 2, "error: shard.npy does not match its record"),
                             (missing, 2, f"error: No such file or directory ({tmp_path / 'absent.yaml'})"),
                             (interrupted, 130, "interrupted: run the same command again")):
        with pytest.raises(SystemExit) as info:
            run_cli(call, resume_hint="run the same command again")
        err = capsys.readouterr().err.strip()
        assert info.value.code == code and err.startswith(line) and "\n" not in err, err


def test_a_bug_keeps_its_traceback(capsys):
    """A numpy broadcasting error in a loss a researcher just edited looked like a user mistake (one `error:`
    line); any exception that is not ours or the system's about a file keeps its traceback."""
    import numpy as np

    def broken_loss():
        np.ones(3) + np.ones(4)

    with pytest.raises(ValueError, match="broadcast"):
        run_cli(broken_loss)
    assert "error:" not in capsys.readouterr().err
