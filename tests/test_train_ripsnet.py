"""Stage 3 (train_ripsnet.py) on a small stage-2 folder made with --pcd: learning, checkpoint, resume,
bad inputs."""
import os

import numpy as np
import pytest
import torch
import yaml

import generate_PCD_PI as stage2
import train_ripsnet as stage3

EPOCHS = ["--epochs", "4", "--no_progress", "--seed", "1"]


@pytest.fixture(scope="module")
def stage2_dir(tmp_path_factory):
    """200 clouds of 16 points in 16-d with varied spreads (so their images differ), dims 0 and 1."""
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.2, 2.0, size=(200, 1, 1))
    clouds = (rng.normal(size=(200, 16, 16)) * scale).astype(np.float32)
    root = tmp_path_factory.mktemp("s3")
    np.save(root / "clouds.npy", clouds)
    stage2.main(["--pcd", str(root / "clouds.npy"), "--dims", "0", "1", "--out_dir", str(root / "data"),
                 "--shard_size", "64", "--no_progress"])
    return root / "data"


def test_trains_and_checkpoint_loads(stage2_dir, tmp_path):
    from topology.point_cloud_pi import PIParams
    from topology.ripsnet import load_ripsnet

    run = tmp_path / "run"
    summary = stage3.main(["--data_dir", str(stage2_dir), "--run_dir", str(run), "--operator", "sum"] + EPOCHS)
    hist = np.array(summary["history"])
    assert hist.shape == (4, 3) and summary["n_train"] == 150 and summary["n_val"] == 50
    assert hist[-1, 2] < hist[0, 2]  # validation MSE below the first epoch's
    assert summary["best_val_mse"] == pytest.approx(hist[:, 2].min())
    held = summary["held_out"]
    assert held["mse"] == pytest.approx(summary["best_val_mse"], rel=1e-6)
    assert 0 < held["mean_abs"] <= held["max_abs"] <= 1 and held["rel_l2"] > 0
    model, ckpt = load_ripsnet(run / "sum_best.pth")
    assert model.pooling == "sum" and model.units == [16, 16, 16, 16, 50, 100, 200, 400]
    assert ckpt["manifest"]["config"]["num_clouds"] == 200 and ckpt["dim"] == 0
    params = PIParams.from_dict(ckpt["pi_params"])
    with open(stage2_dir / "manifest.yaml") as f:
        assert params.to_dict() == yaml.safe_load(f)["pi"][0]["params"]
    clouds = torch.from_numpy(np.load(stage2_dir / "shards" / "pcd_00000.npy")[:5])
    with torch.no_grad():
        assert model(clouds).shape == (5, 400) and model(clouds[0]).shape == (1, 400)
    for name in ("config.yaml", "summary.yaml", "sum_last.pth"):
        assert (run / name).is_file()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run / "tb"))


def test_resume_continues_exactly(stage2_dir, tmp_path):
    base = ["--data_dir", str(stage2_dir), "--dim", "1", "--no_progress", "--seed", "1"]
    full = stage3.main(base + ["--run_dir", str(tmp_path / "a"), "--epochs", "3"])
    stage3.main(base + ["--run_dir", str(tmp_path / "b"), "--epochs", "2"])
    resumed = stage3.main(base + ["--run_dir", str(tmp_path / "b"), "--epochs", "3", "--resume"])
    np.testing.assert_allclose(np.array(resumed["history"]), np.array(full["history"]), rtol=1e-6)
    with pytest.raises(ValueError, match="seed 1 -> 2.*--resume_override"):
        stage3.main(base[:-1] + ["2", "--run_dir", str(tmp_path / "b"), "--epochs", "4", "--resume"])


def test_default_run_dir_name(stage2_dir):
    # the run folder adds the identity hash to this name
    assert stage3.stage2_data(str(stage2_dir), 0, "mean")[0] == "pcd_clouds_batch16_None_dim0_mean"


def test_bad_inputs(stage2_dir, tmp_path):
    run = ["--run_dir", str(tmp_path / "r"), "--no_progress"]
    with pytest.raises(FileNotFoundError, match="generate_PCD_PI"):
        stage3.main(["--data_dir", str(tmp_path / "missing")] + run)
    with pytest.raises(ValueError, match="no persistence images for dim 2"):
        stage3.main(["--data_dir", str(stage2_dir), "--dim", "2"] + run)
    with pytest.raises(ValueError, match="units"):
        stage3.main(["--data_dir", str(stage2_dir), "--units", "8,8,8,8,50,100,200,400"] + run)
    with pytest.raises(FileNotFoundError, match="--resume"):
        stage3.main(["--data_dir", str(stage2_dir), "--resume"] + run)
    unfinished = tmp_path / "unfinished"
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(6, 5, 16)))
    stage2.main(["--pcd", str(tmp_path / "c.npy"), "--out_dir", str(unfinished), "--shard_size", "3",
                 "--max_shards", "1", "--no_progress"])
    with pytest.raises(ValueError, match="unfinished"):
        stage3.main(["--data_dir", str(unfinished)] + run)


@pytest.mark.parametrize("forge", ["bandwidth", "normalizer", "im_range"])
def test_manifest_resealed_with_forged_pi_parameters_is_refused(stage2_dir, tmp_path, run_stage, forge):
    """A manifest edited and resealed (its checksum recomputed) with parameters its images were not made with
    trained a RipsNet whose pi_params disagree with its targets. Now stage 3 recomputes a few images from the
    stored diagrams with the recorded parameters and refuses the folder in one line."""
    import shutil

    from topkd_io import seal

    folder = tmp_path / "forged"
    shutil.copytree(stage2_dir, folder)
    data = yaml.safe_load((folder / "manifest.yaml").read_text())
    params = data["pi"][0]["params"]
    if forge == "im_range":
        params["im_range"] = [v * 1.1 for v in params["im_range"]]
    else:
        params[forge] *= 1.1
    (folder / "manifest.yaml").write_text(yaml.safe_dump(seal(data)))
    code, out, err = run_stage(stage3.main, ["--data_dir", str(folder), "--run_dir", str(tmp_path / "r")] + EPOCHS)
    assert code == 2 and len(err.strip().splitlines()) == 1, out + err
    assert "pi_dim0.npy" in err and "not made with the persistence-image parameters" in err and "rebuild" in err, err
    assert not (tmp_path / "r" / "mean_best.pth").exists()
