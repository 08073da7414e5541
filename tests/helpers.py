"""Tiny networks shared by the tests (import as ``from helpers import TinyNet``; pytest puts tests/ on
the path). They follow the zoo's contract: ``model(x)`` -> logits ``[B, K]``; ``model(x, is_feat=True)``
-> ``(feats, logits)`` with ``feats`` ending in the pooled embedding ``[B, C]``; ``feat_dims``."""
import errno
import hashlib
import os
import signal
import subprocess
import sys
from typing import Callable, Sequence, Union

import torch
from torch import nn

from models.common import FeatureForward
from topkd_io import load_checkpoint


class TinyNet(FeatureForward, nn.Module):
    """feats = [stem, stage 1, ..., stage S, pooled]: a 3x3 stem conv to ``widths[0]`` channels, then one
    conv-BN-ReLU stage per further width (the first keeps the resolution, the others halve it).

    ``widths=(w, w, e)`` is a stem + two stages (the distiller tests); ``(w, w, w, w)`` three stages like
    the WRNs (the TGD tests)."""

    def __init__(self, widths: Sequence[int] = (4, 4, 8), num_classes: int = 3, in_channels: int = 3):
        super().__init__()
        widths = list(widths)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, stride=2 if i else 1, padding=1), nn.BatchNorm2d(b), nn.ReLU())
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))
        self.fc = nn.Linear(widths[-1], num_classes)
        self.feat_dims = widths + [widths[-1]]

    def extract_features(self, x):
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats + [feats[-1].mean(dim=(2, 3))]

    def preact_points(self):
        return [(None, None)] + [(stage[2], stage[1]) for stage in self.stages]


class DigitsNet(nn.Module):
    """Three conv-BN-ReLU blocks, global pool, linear: enough to learn digits in a few epochs; feats = [pooled]."""

    def __init__(self, num_classes=10, width=16):
        super().__init__()
        w2 = 2 * width
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, w2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.Conv2d(w2, w2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(w2, num_classes)

    def forward(self, x, is_feat=False):
        f = self.features(x)
        return ([f], self.fc(f)) if is_feat else self.fc(f)


class TinyRips(nn.Module):
    """Stand-in RipsNet: phi, mean pooling, rho with a sigmoid; ``[K, N, D]`` -> ``[K, 9]``."""

    def __init__(self, d):
        super().__init__()
        self.input_dim = d
        self.phi = nn.Sequential(nn.Linear(d, 5), nn.ReLU())
        self.rho = nn.Sequential(nn.Linear(5, 9), nn.Sigmoid())

    def forward(self, x):
        return self.rho(self.phi(x).mean(dim=-2))


def dead_writer_temp(path) -> str:
    """The name of a temporary of ``path`` as left by a writer on this host that has since died (a process
    that ran and exited, so its PID is free), e.g. for testing stale-temporary cleanup."""
    import os
    import subprocess
    import sys

    from topkd_io.write import host_tag, pid_alive

    while True:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        if not pid_alive(proc.pid):
            return f"{os.fspath(path)}.{host_tag()}.{proc.pid}.k1l2m3.tmp"


def special_node(path, kind):
    """Make a node of ``kind`` (device, fifo, folder, socket) at ``path`` -> a closer to call afterwards. The
    device is a private /dev/null-like node (character device 1:3) in the test's own folder."""
    import os
    import socket
    import stat

    import pytest

    if kind == "device":
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs CAP_MKNOD (root outside a restricted container)")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        os.mkdir(path)
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.fspath(path))
        return sock.close
    return lambda: None


def node_kind(path):
    """(file type, device number) of ``path`` itself (a link is not followed)."""
    import os
    import stat

    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), st.st_rdev


def one_line(code, err, *words):
    """A user error: status 2, exactly one ``error:`` line, no traceback, naming ``words`` -> that line."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def zip_writer_full(fail_when: Callable[[object], bool] = lambda obj: True):
    """A stand-in for ``torch.save`` that, for the objects ``fail_when`` picks, writes part of a file and fails as
    torch's zip writer does on a full disk: a RuntimeError ('[enforce fail at inline_container.cc...]') raised
    while an ENOSPC OSError is handled. Other objects are saved by the real ``torch.save``."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if not fail_when(obj):
            return real(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04 partial")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
                               "file data/0: file write failed") from None

    return save


def weights_digest(path) -> str:
    """SHA-256 of a checkpoint's ``model`` tensors (names and bytes, in name order): equal digests, equal weights."""
    state = load_checkpoint(path)["model"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].numpy().tobytes())
    return digest.hexdigest()


def kill9_after(script: str, argv: Sequence[str], cwd, line: Union[str, Callable[[str], bool]]) -> None:
    """Run ``python script argv`` in ``cwd`` (one OpenMP thread) and kill -9 it as soon as it prints ``line`` (a
    prefix test when given a string); asserts that it died by that signal, not by finishing first."""
    proc = subprocess.Popen([sys.executable, script, *argv], cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = line if callable(line) else (lambda text: text.startswith(line))
    try:
        for text in proc.stdout:
            if seen(text):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
