"""README command 1 in its smoke version: every stage on digits, the results table and the figures."""
import re

import pytest

pytest.importorskip("sklearn")


@pytest.mark.slow
def test_quickstart_fast_end_to_end(tmp_path, monkeypatch):
    from matplotlib.image import imread

    from tools import quickstart

    import torch

    monkeypatch.setenv("TOPKD_THREADS", "1")
    threads = torch.get_num_threads()
    out = quickstart.main(["--fast", "--out", str(tmp_path / "qs")])
    # the embedding's UMAP (numba's OpenMP layer) must not leave torch with another thread count
    assert torch.get_num_threads() == threads

    table = (out / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    methods = [line.split("|")[3].strip() for line in rows]
    assert methods == ["CE", "CE only", "KD", "KD+TopKD", "KD+TopKD-exact", "CE on image PIs", "TGD"], table
    teacher_best = float(rows[0].split("|")[4])
    assert teacher_best >= 50.0, f"the digits teacher should beat chance (10%) by a wide margin:\n{table}"
    for row in rows:
        best, last = (float(v) for v in row.split("|")[4:6])
        assert 0.0 <= last <= best <= 100.0, row

    for stage_file in ["teacher/resnet20_best.pth", "teacher/config.yaml", "pcd/manifest.yaml",
                       "pcd/pi_dim0.npy", "ripsnet/mean_best.pth", "image_pi/digits_train/manifest.yaml",
                       "pi_teacher/resnet8_best.pth", "students/TGD/resnet8_last.pth"]:
        assert (out / stage_file).is_file(), stage_file
    for name in ["pi_grid.png", "embedding.png", "curves.png"]:
        image = imread(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert image.std() > 0, f"{name} is blank"
    assert re.search(r"Figures: pi_grid\.png, embedding\.png, curves\.png", table), table
