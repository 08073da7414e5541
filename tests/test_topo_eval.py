"""engine.topo_eval: fixed probe items, the probe's measurements, the Trainer's probe hook and summary.yaml."""
import math
import os

import numpy as np
import pytest
import torch
import yaml
from helpers import DigitsNet

from engine.topo_eval import TopologyProbe, probe_indices
from topology import metrics


class Items(torch.utils.data.Dataset):
    """``(image, target, index)`` items over fixed random images."""

    def __init__(self, n=150, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 3, 8, 8, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i]), i


def test_probe_items_are_fixed_and_independent_of_seed():
    torch.manual_seed(123)
    np.random.seed(5)
    a = probe_indices(1000, 4, 64)
    torch.manual_seed(7)
    b = probe_indices(1000, 4, 64)
    assert a == b and len(a) == 4 and all(len(x) == 64 for x in a)
    flat = [i for x in a for i in x]
    assert len(set(flat)) == 256 and flat != sorted(flat)  # distinct, not the first items in order
    assert probe_indices(150, 4, 64) == [a_[:] for a_ in probe_indices(150, 2, 64)]  # 2 full batches fit
    assert len(probe_indices(20, 4, 64)) == 1 and len(probe_indices(20, 4, 64)[0]) == 20
    with pytest.raises(ValueError, match="at least 2"):
        probe_indices(1, 4, 64)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return DigitsNet(width=4).eval(), DigitsNet(width=6)


def test_probe_measures_teacher_against_itself_and_another(nets):
    teacher, student = nets
    probe = TopologyProbe(teacher, Items(), batches=2, batch_size=32, dims=(0, 1))
    same = probe.measure(teacher)
    assert set(same) == set(probe.keys())
    for key, value in same.items():
        if key == "cka_linear":
            assert value == pytest.approx(1.0, abs=1e-9)
        elif not math.isnan(value):
            assert value == pytest.approx(0.0, abs=1e-9), key
    student.train()
    other = probe.measure(student)
    assert student.training  # the student's mode is restored
    assert other["bottleneck_h0"] > 0 and other["wasserstein1_h0_norm_diam"] > 0 and other["cka_linear"] < 1
    # the values are the mean over the fixed batches of topology_metrics
    feats = []
    for batch in probe.indices:
        x = torch.stack([Items()[i][0] for i in batch])
        with torch.no_grad():
            feats.append((teacher(x, is_feat=True)[0][-1].double(), student.eval()(x, is_feat=True)[0][-1].double()))
    student.train()
    want = np.mean([metrics.topology_metrics(t, s, dims=(0, 1))["bottleneck_h1"] for t, s in feats])
    assert other["bottleneck_h1"] == pytest.approx(want, rel=1e-12)
    settings = probe.settings()
    assert settings["batches"] == 2 and settings["batch_size"] == 32 and settings["normalize"] == "diam"
    assert settings["pi_params"][0]["homology_dim"] == 0


def test_trainer_runs_probes_and_writes_summary(tmp_path, nets):
    import argparse

    from distiller import get_distiller
    from topkd_io import load_checkpoint
    from engine.trainer import Trainer
    from tools.figures import read_scalars

    teacher, _ = nets
    torch.manual_seed(1)
    student = DigitsNet(width=4)
    data = Items(96)
    cfg = argparse.Namespace(batch_size=32, lr=0.05, momentum=0.9, weight_decay=5e-4, lr_decay_epochs=[],
                             lr_decay_rate=0.1, epochs=3, seed=0, num_workers=0, device="cpu", print_freq=100,
                             resume=None, arch="digitsnet", dataset="fake")

    class Counting:
        name, every = "count", 2

        def __init__(self):
            self.calls = []

        def measure(self, model):
            self.calls.append(model.training)
            return {"x": float(len(self.calls))}

    counting = Counting()
    probe = TopologyProbe(teacher, data, batches=1, batch_size=32, every=None)
    summary = Trainer(get_distiller("vanilla")(student), data, data, cfg, str(tmp_path / "run"),
                      probes=[counting, probe]).fit()
    assert len(counting.calls) == 2  # epoch 2 (every 2) and epoch 3 (the last)
    assert summary["probes"]["count"] == {"epoch": 3, "x": 2.0}
    assert summary["probes"]["topo"]["epoch"] == 3 and set(probe.keys()) < set(summary["probes"]["topo"])
    ckpt = load_checkpoint(summary["last_checkpoint"])
    assert ckpt["probes"]["topo"] == summary["probes"]["topo"]
    with open(tmp_path / "run" / "summary.yaml") as f:
        written = yaml.safe_load(f)
    assert written["format"] == 1 and written["arch"] == "digitsnet"
    assert written["probes"]["topo"]["cka_linear"] == pytest.approx(summary["probes"]["topo"]["cka_linear"])
    assert written["probe_settings"]["topo"]["batch_size"] == 32
    assert not [f for f in os.listdir(tmp_path / "run") if f.endswith(".tmp")]
    tb = read_scalars(tmp_path / "run")
    assert tb["count/x"][0].tolist() == [2, 3] and tb["count/x"][1].tolist() == [1.0, 2.0]
    assert tb["topo/bottleneck_h0"][0].tolist() == [3]


def _saved_net(path, num_classes, image_size):
    """A random resnet8 saved as a digits run records it (its class count and image size)."""
    from models import model_dict
    from topkd_io import save_torch

    torch.manual_seed(num_classes)
    save_torch({"model": model_dict["resnet8"](num_classes=num_classes).state_dict(), "arch": "resnet8",
                "num_classes": num_classes, "dataset": "digits",
                "config": {"dataset": "digits", "image_size": image_size}}, str(path))
    return str(path)


def test_topo_metrics_refuses_other_class_counts_and_warns_on_other_image_sizes(tmp_path, run_stage, caplog):
    """Was: a 100-class student was measured against a 10-class teacher, and networks trained on 8-pixel images
    were measured at another size, without a word."""
    from helpers import one_line
    from tools import topo_metrics

    teacher, student = _saved_net(tmp_path / "t.pth", 10, 8), _saved_net(tmp_path / "s.pth", 10, 8)
    wide = _saved_net(tmp_path / "s100.pth", 100, 8)
    small = ["--batches", "1", "--batch_size", "16", "--out", str(tmp_path / "topo.yaml")]
    code, _, err = run_stage(topo_metrics.main, ["--path_t", teacher, "--path_s", wide] + small)
    one_line(code, err, "s100.pth has 100 classes", "t.pth has 10")
    assert not (tmp_path / "topo.yaml").exists()
    with caplog.at_level("WARNING"):
        code, _, err = run_stage(topo_metrics.main, ["--path_t", teacher, "--path_s", student] + small)
        assert code == 0, err
        assert not [r for r in caplog.records if r.levelname == "WARNING"]  # at the size they were trained on
        code, _, err = run_stage(topo_metrics.main, ["--path_t", teacher, "--path_s", student, "--image_size", "16"]
                                 + small)
    assert code == 0, err
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2 and all("8-pixel" in w and "16-pixel" in w for w in warned), warned
    assert yaml.safe_load((tmp_path / "topo.yaml").read_text())["image_size"] == 16
