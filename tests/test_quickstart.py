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
    first = table[table.index("| model"):].split("\n\n")[0]  # the table of means; the per-seed one follows
    rows = [line for line in first.splitlines() if "---" not in line][1:]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in rows]
    methods = [c[2] for c in cells]
    assert methods == ["CE", "CE only", "KD", "KD+TopKD", "KD+TopKD-exact", "CE on image PIs", "TGD"], table
    assert [c[3] for c in cells] == ["1", "2", "2", "2", "2", "1", "2"], table  # --fast: seeds 0 and 1
    teacher_best = float(cells[0][4])
    assert teacher_best >= 50.0, f"the digits teacher should beat chance (10%) by a wide margin:\n{table}"
    for c in cells:
        best, last = (float(v.split()[0]) for v in c[4:6])
        assert 0.0 <= last <= best <= 100.0, c
    for c in cells[1:5] + cells[6:]:  # every student has its topology columns, mean ± std over two seeds
        assert all("±" in v for v in c[6:10]), c
        assert 0 < float(c[9].split()[0]) <= 1.0, c  # linear CKA
    assert all(v == "-" for v in cells[0][6:10]), cells[0]
    per_seed = table[table.index("Per seed:"):]
    assert per_seed.count("| KD+TopKD | 1 |") == 1, per_seed

    for stage_file in ["teacher/resnet20_best.pth", "teacher/config.yaml", "pcd/manifest.yaml",
                       "pcd/pi_dim0.npy", "ripsnet/mean_best.pth", "image_pi/digits_train/manifest.yaml",
                       "pi_teacher/resnet8_best.pth", "students/TGD/seed_1/resnet8_last.pth",
                       "students/KD_TopKD/seed_0/summary.yaml"]:
        assert (out / stage_file).is_file(), stage_file
    for name in ["pi_grid.png", "embedding.png", "curves.png", "diagrams.png"]:
        image = imread(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert image.std() > 0, f"{name} is blank"
    assert re.search(r"Figures: pi_grid\.png, embedding\.png, curves\.png, diagrams\.png", table), table
