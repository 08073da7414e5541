"""Stage 2 (generate_PCD_PI.py): files, manifest, images against gudhi and the official reference,
exact resume, bad inputs. Tiny inputs: a random resnet8 on 16x16 digits, 32-point clouds, one pass."""
import os

import numpy as np
import pytest
import torch
import yaml

import generate_PCD_PI as stage2
from topkd_io import save_torch
from topkd_io import safe_load

TEACHER_ARGS = ["--dataset", "digits", "--image_size", "16", "--batch_size", "32", "--passes", "1",
                "--shard_size", "10", "--dims", "0", "1", "--num_workers", "0", "--no_progress"]
NUM_CLOUDS = 1437 // 32  # digits train split, drop_last


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    from models import model_dict

    torch.manual_seed(0)
    model = model_dict["resnet8"](num_classes=10)
    path = tmp_path_factory.mktemp("teacher") / "resnet8_best.pth"
    save_torch({"model": model.state_dict(), "arch": "resnet8", "num_classes": 10}, str(path))
    return str(path)


@pytest.fixture(scope="module")
def full_run(teacher, tmp_path_factory):
    """One uninterrupted stage-2 run -> its folder."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("stage2") / "full"
    stage2.main(["--path_t", teacher, "--out_dir", str(out)] + TEACHER_ARGS)
    return out


def _manifest(folder):
    with open(os.path.join(folder, "manifest.yaml")) as f:
        return yaml.safe_load(f)


def _gudhi_images(clouds, dim, params):
    """Independent reference: gudhi Rips diagrams and gudhi's PersistenceImage."""
    import gudhi
    from gudhi.representations import PersistenceImage

    diagrams = []
    for cloud in clouds:
        st = gudhi.RipsComplex(points=cloud.astype(np.float64)).create_simplex_tree(max_dimension=dim + 1)
        st.persistence()
        dg = np.asarray(st.persistence_intervals_in_dimension(dim), dtype=np.float64).reshape(-1, 2)
        diagrams.append(dg[np.isfinite(dg).all(axis=1)])
    x0, x1, y0, y1 = params["im_range"]
    pi = PersistenceImage(bandwidth=params["bandwidth"], resolution=params["resolution"],
                          im_range=[x0, x1, y0, y1],
                          weight=lambda p: 10 * np.tanh(p[1]) + 10 * np.log(100 * p[0] + 1))
    return pi.fit_transform(diagrams) / params["normalizer"]


def test_teacher_run_files_manifest_and_images(full_run, teacher):
    m = _manifest(full_run)
    assert m["complete"] and m["counts"]["clouds"] == NUM_CLOUDS
    cfg = m["config"]
    assert cfg["source"]["arch"] == "resnet8" and len(cfg["source"]["teacher"]["sha256"]) == 64
    assert (cfg["dataset"], cfg["layer"], cfg["batch_size"], cfg["passes"], cfg["dims"]) == ("digits", -1, 32, 1, [0, 1])
    assert cfg["teacher_bn"] == "batch" == cfg["source"]["teacher_bn"]  # the official default, recorded
    assert cfg["source"]["item_draws"] == "splitmix64-keyed/1"  # the keyed augmentation rule, recorded
    assert cfg["feature_dim"] == 64 and len(m["shards"]) == 5 == -(-NUM_CLOUDS // 10)
    shard = np.load(full_run / m["shards"][0]["pcd"])
    assert shard.dtype == np.float32 and shard.shape == (10, 32, 64)
    assert (shard >= 0).all()  # FC input of a ResNet: post-ReLU average, never normalized
    clouds = np.concatenate([np.load(full_run / r["pcd"]) for r in m["shards"]])
    for d in (0, 1):
        pi = np.load(full_run / f"pi_dim{d}.npy")
        assert pi.dtype == np.float32 and pi.shape == (NUM_CLOUDS, 400)
        assert abs(pi.max() - 1.0) < 1e-6
        pick = [0, 17, NUM_CLOUDS - 1]
        ref = _gudhi_images(clouds[pick], d, m["pi"][d]["params"])
        np.testing.assert_allclose(pi[pick], ref, atol=1e-5)


def test_clouds_are_teacher_embeddings_of_augmented_batches(full_run, teacher):
    """Cloud 0 = the teacher's FC input for its batch, BatchNorm on the batch's statistics (the default
    --teacher_bn batch: torch's train-mode BatchNorm is the reference); augmentation on."""
    from datasets import build_datasets
    from datasets.keyed import KeyedItems
    from models import load_model
    from pcd.sources import PassSchedule

    data = build_datasets("digits", ".", image_size=16, train_augment=True)
    model, _, _ = load_model(teacher)
    model.train()  # batch statistics (this copy's running statistics are not used afterwards)
    keys = PassSchedule(len(data.train), 32, 1, 0).batch(0)
    assert len({i for _, i in keys}) == 32 and {p for p, _ in keys} == {0}
    stored = np.load(full_run / "shards" / "pcd_00000.npy")[0]
    plain = build_datasets("digits", ".", image_size=16, train_augment=False).train
    # each sample's augmentation is keyed by (--seed, pass, index); read one item at a time
    images = [KeyedItems(data.train, 0)[key][0] for key in keys]
    with torch.no_grad():
        feats, _ = model(torch.stack(images), is_feat=True)
        eval_feats, _ = model(torch.stack([plain[i][0] for _, i in keys]), is_feat=True)
    np.testing.assert_allclose(stored, feats[-1].numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(stored, eval_feats[-1].numpy(), atol=1e-4)  # augmentation was on


def test_resume_skips_finished_shards_and_matches(full_run, teacher, tmp_path, monkeypatch):
    out = tmp_path / "resumed"
    args = ["--path_t", teacher, "--out_dir", str(out)] + TEACHER_ARGS
    stage2.main(args + ["--max_shards", "2"])
    m = _manifest(out)
    assert not m["complete"] and [r["index"] for r in m["shards"]] == [0, 1]
    assert not (out / "pi_dim0.npy").exists()
    stamps = {f: os.stat(out / "shards" / f).st_mtime_ns for f in os.listdir(out / "shards")}

    # interrupt the second attempt in the middle of shard 3
    from pcd import generate as gen

    calls = []
    real = gen.Stage2.compute_shard

    def flaky(self, i, clouds):
        calls.append(i)
        if i == 3 and calls.count(3) == 1:
            raise KeyboardInterrupt
        return real(self, i, clouds)

    monkeypatch.setattr(gen.Stage2, "compute_shard", flaky)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C (run_cli: status 130 and how to resume)
        stage2.main(args)
    assert [r["index"] for r in _manifest(out)["shards"]] == [0, 1, 2]
    assert not any(f.endswith(".tmp") for f in os.listdir(out / "shards"))
    stage2.main(args)
    assert calls == [2, 3, 3, 4]  # shards 0-1 never recomputed, 2 not redone after the interrupt
    for f, t in stamps.items():
        assert os.stat(out / "shards" / f).st_mtime_ns == t
    for name in ["pi_dim0.npy", "pi_dim1.npy"] + [f"shards/pcd_{i:05d}.npy" for i in range(5)]:
        np.testing.assert_array_equal(np.load(out / name), np.load(full_run / name), err_msg=name)
    assert _manifest(out)["pi"] == _manifest(full_run)["pi"]


# The stage as a script, its shard 1 held until stdin closes: SIGINT then reaches a running stage 2.
GATED_STAGE2 = """
import runpy, sys
from pcd import generate as gen
real = gen.Stage2.compute_shard
def gated(self, i, clouds):
    if i == 1:
        print("computing shard 1", flush=True)
        sys.stdin.readline()
    return real(self, i, clouds)
gen.Stage2.compute_shard = gated
sys.argv = ["generate_PCD_PI.py"] + sys.argv[1:]
runpy.run_path("generate_PCD_PI.py", run_name="__main__")
"""


def test_interrupt_names_the_command_that_resumes(tmp_path):
    """Ctrl-C in a running stage 2 ends with status 130 and one line naming the command that resumes it (the
    same command; not --resume, which this stage does not take); run, that command finishes the folder as an
    uninterrupted run does."""
    import signal
    import subprocess
    import sys

    clouds = _clouds(tmp_path, np.random.default_rng(0).normal(size=(9, 12, 4)).astype(np.float32))
    args = ["--pcd", clouds, "--shard_size", "3", "--dims", "0", "1", "--no_progress"]
    stage2.main(args + ["--out_dir", str(tmp_path / "full")])
    repo = os.path.dirname(os.path.abspath(stage2.__file__))
    proc = subprocess.Popen([sys.executable, "-c", GATED_STAGE2, *args, "--out_dir", str(tmp_path / "o")], cwd=repo,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "computing shard 1\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)  # closes stdin: shard 1 is let go
    assert proc.returncode == 130, out + err
    assert "--resume" not in out + err
    line = [x for x in (out + err).splitlines() if x.startswith("interrupted")]
    assert line == ["interrupted: run the same command again: the finished shards are kept"], out + err
    assert [r["index"] for r in _manifest(tmp_path / "o")["shards"]] == [0]
    assert stage2.main(args + ["--out_dir", str(tmp_path / "o")])["complete"]  # the same command
    for name in ("pi_dim0.npy", "pi_dim1.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "o" / name), np.load(tmp_path / "full" / name))


def test_official_reference_images(reference_dir, tmp_path):
    ref = np.load(reference_dir / "official_pi_reference.npz")
    np.save(tmp_path / "pcd.npy", ref["pcd"])
    out = tmp_path / "out"
    stage2.main(["--pcd", str(tmp_path / "pcd.npy"), "--dims", "0", "1", "--out_dir", str(out),
                 "--shard_size", "100", "--no_progress"])
    for d in (0, 1):
        np.testing.assert_allclose(np.load(out / f"pi_dim{d}.npy"), ref[f"pi_dim{d}"], rtol=0, atol=1e-5)
    m = _manifest(out)
    assert [r["clouds"] for r in m["shards"]] == [100, 100, 40]
    finite0 = ref["pd_dim0"][np.isfinite(ref["pd_dim0"][:, 1])]
    assert m["counts"]["finite_points_dim0"] == int((finite0[:, 1] > 0).sum())
    assert m["counts"]["finite_points_dim1"] == int(np.isfinite(ref["pd_dim1"][:, 1]).sum())


# ------------------------------------------------------------------------------------------ bad input
def _clouds(tmp_path, array, name="c.npy"):
    np.save(tmp_path / name, array)
    return str(tmp_path / name)


def test_nan_cloud_names_shard_and_cloud(tmp_path):
    x = np.random.default_rng(0).normal(size=(12, 6, 3)).astype(np.float32)
    x[7, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"shard 1, cloud 2 \(global cloud 7\)"):
        stage2.main(["--pcd", _clouds(tmp_path, x), "--shard_size", "5", "--out_dir", str(tmp_path / "o"),
                     "--no_progress"])


def test_float16_clouds_without_warnings_and_as_float32(tmp_path):
    """A float16 --pcd array: no numpy warning (overflow in a cast), and the folder of the same values given as
    float32."""
    import warnings

    x = np.random.default_rng(0).normal(size=(9, 12, 4)).astype(np.float16)
    out = {}
    for dtype in (np.float16, np.float32):
        name = np.dtype(dtype).name
        out[name] = tmp_path / name
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            stage2.main(["--pcd", _clouds(tmp_path, x.astype(dtype), f"{name}.npy"), "--shard_size", "4", "--dims",
                         "0", "1", "--out_dir", str(out[name]), "--no_progress"])
    for name in ["pi_dim0.npy", "pi_dim1.npy"] + [f"shards/{k}_{i:05d}.np{e}" for k, e in
                                                  (("pcd", "y"), ("pd_dim0", "z"), ("pd_dim1", "z")) for i in range(3)]:
        a, b = np.load(out["float16"] / name), np.load(out["float32"] / name)
        for key in (a.files if name.endswith(".npz") else [None]):
            np.testing.assert_array_equal(a[key] if key else a, b[key] if key else b, err_msg=f"{name} {key}")
    assert _manifest(out["float16"])["pi"] == _manifest(out["float32"])["pi"]
    from pcd.generate import check_clouds

    with warnings.catch_warnings():  # the check of any source's clouds takes float16 too
        warnings.simplefilter("error")
        check_clouds(x, 0, 0)
        with pytest.raises(ValueError, match="cloud 2 .*NaN or inf"):
            check_clouds(np.where(np.arange(9)[:, None, None] == 2, np.float16(np.inf), x), 0, 0)


@pytest.mark.parametrize("shape", [(4, 1, 3), (4, 5)])
def test_too_few_points_or_bad_shape(tmp_path, shape):
    x = np.ones(shape, dtype=np.float32)
    with pytest.raises(ValueError, match="at least 2 points|float array"):
        stage2.main(["--pcd", _clouds(tmp_path, x), "--out_dir", str(tmp_path / "o"), "--no_progress"])


def test_bad_dims_and_missing_file(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(4, 5, 3))
    with pytest.raises(ValueError, match="--dims must be 0 and/or 1"):
        stage2.main(["--pcd", _clouds(tmp_path, x), "--dims", "2", "--out_dir", str(tmp_path / "o")])
    with pytest.raises(FileNotFoundError, match="--pcd file"):
        stage2.main(["--pcd", str(tmp_path / "nope.npy"), "--out_dir", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="either a teacher"):
        stage2.main(["--pcd", str(tmp_path / "nope.npy"), "--path_t", "t.pth", "--out_dir", str(tmp_path / "o")])
    # no source at all: the official way, a teacher is looked for under save_t_models (here none)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no finished teacher on cifar100 under save_t_models"):
        stage2.main(["--out_dir", str(tmp_path / "o")])


def test_resume_into_folder_of_other_config(tmp_path):
    rng = np.random.default_rng(0)
    a = _clouds(tmp_path, rng.normal(size=(6, 5, 3)), "a.npy")
    out = str(tmp_path / "o")
    stage2.main(["--pcd", a, "--out_dir", out, "--shard_size", "3", "--max_shards", "1", "--no_progress"])
    with pytest.raises(ValueError, match=r"holds a stage-2 run with other settings: shard_size 3 -> 2; pass --overwrite"):
        stage2.main(["--pcd", a, "--out_dir", out, "--shard_size", "2", "--no_progress"])
    b = _clouds(tmp_path, rng.normal(size=(6, 5, 3)), "b.npy")
    with pytest.raises(ValueError, match=r"other settings: input pcd \(sha256\)"):
        stage2.main(["--pcd", b, "--out_dir", out, "--shard_size", "3", "--no_progress"])


def test_teacher_of_another_arch_and_bad_layer(teacher, tmp_path):
    common = ["--path_t", teacher, "--out_dir", str(tmp_path / "o")] + TEACHER_ARGS
    with pytest.raises(ValueError, match="resnet8.*resnet20|resnet20.*resnet8"):
        stage2.main(common + ["--model_t", "resnet20"])
    with pytest.raises(ValueError, match=r"--layer 7 is out of range.*\[-5, 4\]"):
        stage2.main(common + ["--layer", "7"])
    official = tmp_path / "resnet20_best.pth"  # official layout, architecture from the file name
    save_torch({"model": safe_load(teacher)["model"]}, str(official))
    with pytest.raises(ValueError, match="does not fit resnet20"):
        stage2.main(["--path_t", str(official), "--out_dir", str(tmp_path / "p")] + TEACHER_ARGS)


def test_intermediate_layer_is_pooled(teacher, tmp_path):
    out = tmp_path / "l2"
    args = ["--path_t", teacher, "--out_dir", str(out), "--layer", "2", "--max_shards", "1"] + TEACHER_ARGS
    stage2.main(args)
    m = _manifest(out)
    assert m["config"]["feature_dim"] == 32 and m["config"]["layer"] == 2
    assert np.load(out / m["shards"][0]["pcd"]).shape == (10, 32, 32)


def test_teacher_bn_modes(teacher):
    """--teacher_bn batch: batch statistics, stored running statistics untouched; eval: stored statistics."""
    from datasets import build_datasets
    from models import load_model
    from pcd.sources import TeacherCloudSource

    data = build_datasets("digits", ".", image_size=16, train_augment=True)
    clouds = {}
    for mode in ("batch", "eval"):
        model, _, _ = load_model(teacher)
        for m in model.modules():  # non-trivial stored statistics, so the two modes must differ
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        source = TeacherCloudSource(model, data.train, batch=32, passes=1, layer=-1, seed=0, teacher_bn=mode)
        clouds[mode] = np.concatenate(list(source.clouds(0, 2)))
        after = model.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), mode  # weights and buffers unchanged
        assert source.config()["teacher_bn"] == mode
        # independent reference: the same images through torch's own eval / train-mode BatchNorm
        images = torch.stack([source.images[key][0] for key in source.schedule.batch(1)])
        ref_model, _, _ = load_model(teacher)
        ref_model.load_state_dict(before)
        ref_model.train(mode == "batch")
        with torch.no_grad():
            ref = ref_model(images, is_feat=True)[0][-1].numpy()
        np.testing.assert_allclose(clouds[mode][1], ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(clouds["batch"], clouds["eval"], atol=1e-3)
    with pytest.raises(ValueError, match="--teacher_bn must be one of batch, eval"):
        TeacherCloudSource(load_model(teacher)[0], data.train, batch=32, passes=1, layer=-1, seed=0, teacher_bn="x")


def test_clouds_do_not_depend_on_the_worker_count(full_run, teacher):
    """Each image is keyed by (--seed, pass, index): a DataLoader worker draws the clouds of the main process."""
    from datasets import build_datasets
    from models import load_model
    from pcd.sources import TeacherCloudSource

    data = build_datasets("digits", ".", image_size=16, train_augment=True)
    source = TeacherCloudSource(load_model(teacher)[0], data.train, batch=32, passes=1, layer=-1, seed=0, workers=1)
    np.testing.assert_allclose(np.concatenate(list(source.clouds(3, 5))),
                               np.load(full_run / "shards" / "pcd_00000.npy")[3:5], rtol=1e-5, atol=1e-6)


def test_data_on_device_gives_the_same_clouds(full_run, teacher, tmp_path):
    """--data_on_device: the batches augmented on the device (here the CPU) with the schedule's seeds give
    the clouds of the DataLoader route."""
    out = tmp_path / "dev"
    args = [a for i, a in enumerate(TEACHER_ARGS) if not (TEACHER_ARGS[i - 1] == "0" and a == "1")]  # H0 only
    stage2.main(["--path_t", teacher, "--out_dir", str(out), "--data_on_device", "--max_shards", "2"] + args)
    for k in range(2):
        np.testing.assert_allclose(np.load(out / "shards" / f"pcd_{k:05d}.npy"),
                                   np.load(full_run / "shards" / f"pcd_{k:05d}.npy"), rtol=1e-5, atol=1e-6)
