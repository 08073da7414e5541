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
    methods = [c[2].split(" (")[0] for c in cells]
    assert methods == ["CE", "CE only", "KD", "KD+TopKD", "KD+TopKD-exact", "CE on image PIs", "TGD",
                       "KD, warm-started", "TGD, warm-started"], table
    assert [c[3] for c in cells] == ["1", "2", "2", "2", "2", "1", "2", "2", "2"], table  # --fast: seeds 0 and 1
    assert [c[12] for c in cells] == ["scratch"] * 7 + [quickstart.WARM] * 2, table
    assert "--pi_range 0 " in table and "TGD from scratch:" in table, table
    paired = table[table.index("| method | minus"):].split("\n\n")[0]
    assert "| TGD, warm-started | KD, warm-started | 2 |" in paired and "| TGD | KD | 2 |" in paired, paired
    teacher_best = float(cells[0][4])
    assert teacher_best >= 50.0, f"the digits teacher should beat chance (10%) by a wide margin:\n{table}"
    for c in cells:
        best, last = (float(v.split()[0]) for v in c[4:6])
        assert 0.0 <= last <= best <= 100.0, c
    for c in cells[1:5] + cells[6:]:  # every student has its topology columns, mean ± std over two seeds
        assert all("±" in v for v in c[6:10]), c
        assert 0 < float(c[9].split()[0]) <= 1.0, c  # linear CKA
    assert all(v == "-" for v in cells[0][6:10]), cells[0]
    # the fast RipsNet is trained long enough for KD+TopKD's term to act (it used to be 1e-7 of the loss)
    assert "inactive" not in table, table
    per_seed = table[table.index("Per seed:"):]
    assert per_seed.count("| KD+TopKD | 1 |") == 1, per_seed

    for stage_file in ["students/TGD_warm-started/seed_0/resnet8_last.pth",
                       "teacher/resnet20_best.pth", "teacher/config.yaml", "pcd/manifest.yaml",
                       "pcd/pi_dim0.npy", "ripsnet/mean_best.pth", "image_pi/digits_train/manifest.yaml",
                       "pi_teacher/resnet8_best.pth", "students/TGD/seed_1/resnet8_last.pth",
                       "students/KD_TopKD/seed_0/summary.yaml"]:
        assert (out / stage_file).is_file(), stage_file
    for name in ["pi_grid.png", "embedding.png", "curves.png", "diagrams.png"]:
        image = imread(out / name)
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert image.std() > 0, f"{name} is blank"
    assert re.search(r"Figures: pi_grid\.png, embedding\.png, curves\.png, diagrams\.png", table), table


def test_a_method_whose_topology_term_was_inactive_is_marked():
    """Was: under --fast, KD+TopKD equalled KD in every column (its loss_tda printed as 0.0000: the RipsNet,
    trained 3 epochs, gave every cloud nearly the same image) and nothing said the term was inactive."""
    from tools.quickstart import results_table

    def row(method, seed, term=None):
        return dict(model="resnet8", role="student", method=method, seed=seed, best=10.0, last=10.0, seconds=1.0,
                    topo={}, term=term, init="scratch", config=dict(epochs=1, loss="1.0*CE", num_classes=10))

    dead = dict(value=1.4e-6, share=1.2e-7, ripsnet_rel_l2=1.02)
    live = dict(value=0.075, share=6e-3, ripsnet_rel_l2=0.30)
    exact = dict(value=1.36, share=0.1, ripsnet_rel_l2=None)
    table = results_table([row("KD", 0), row("KD", 1), row("KD+TopKD", 0, dead), row("KD+TopKD", 1, live),
                           row("KD+TopKD-exact", 0, exact), row("KD+TopKD-exact", 1, exact)])
    methods = [line.split("|")[3].strip() for line in table.splitlines() if line.startswith("| resnet8")]
    assert methods == ["KD", "KD+TopKD (inactive topology term †)", "KD+TopKD-exact"], table
    (note,) = [line for line in table.splitlines() if line.startswith("†")]
    assert "KD+TopKD:" in note and "1 of 2 seeds" in note and "1.4e-06" in note and "relative L2 of 1.02" in note
    assert "inactive" not in results_table([row("KD+TopKD", 0, live), row("KD", 0)])


def synthetic_rows():
    """Students of 3 seeds with made-up scores and configs as train_student.py records them."""
    from tools.quickstart import SCRATCH, WARM

    kd = dict(epochs=40, loss="1.0*CE + 1.0*KD(T=4.0)", model_t="resnet20", path_t="t.pth", gamma=1.0, alpha=1.0,
              kd_T=4.0, num_classes=10, dataset="digits", train_fraction=0.1, image_size=16)
    tgd = dict(kd, loss="0.1*CE + 0.9*T^2*(0.99*KL_img + 0.01*KL_pi)(T=4.0, KL mean) + 1000.0*sim(...)",
               model_t2="resnet8", gamma=0.1, alpha=0.9, tgd_alpha=0.99, kd_reduction="mean")
    best = {("KD", SCRATCH): [95.0, 96.0, 94.0], ("KD+TopKD", SCRATCH): [95.5, 97.0, 94.2],
            ("TGD", SCRATCH): [70.0, 66.0, 68.0], ("KD", WARM): [96.0, 97.0, 97.5], ("TGD", WARM): [96.5, 96.0, 97.0]}
    rows = [dict(model="resnet8", role="PI teacher", method="CE on image PIs", seed=None, best=15.0, last=14.0,
                 seconds=1.0, topo={}, term=None, init=SCRATCH, config=dict(epochs=8, num_classes=10))]
    for (method, init), scores in best.items():
        for seed, score in enumerate(scores):
            config = dict(tgd if method == "TGD" else kd, seed=seed, epochs=40 if init == SCRATCH else 20)
            rows.append(dict(model="resnet8", role="student", method=method, seed=seed, best=score, last=score - 0.5,
                             seconds=1.0, topo={"cka_linear": 0.8 + 0.01 * seed + (0.05 if method == "KD" else 0)},
                             term=None, init=init, config=config))
    return rows, best


def test_quickstart_table_states_settings_and_pairs_each_method_with_kd():
    """Was: a mean ± std per method only, no settings, no comparison; a reader had to do the statistics by hand
    and could not tell why TGD sat far below KD."""
    from tools.paired import paired_difference
    from tools.quickstart import SCRATCH, WARM, paired_table, results_table

    rows, best = synthetic_rows()
    table = results_table(rows)
    lines = {line.split("|")[3].strip(): [c.strip() for c in line.split("|")[1:-1]]
             for line in table.splitlines() if line.startswith("| resnet8")}
    assert list(lines) == ["CE on image PIs", "KD", "KD+TopKD", "TGD (PI teacher near chance ‡)", "KD, warm-started",
                           "TGD, warm-started (PI teacher near chance ‡)"], table
    assert "best top-1 (%, test-selected)" in table.splitlines()[0]
    kd, tgd_warm = lines["KD"], lines["TGD, warm-started (PI teacher near chance ‡)"]
    assert kd[-4:] == ["40", SCRATCH, "resnet20", "1.0*CE + 1.0*KD(T=4.0)"], kd
    assert tgd_warm[-4:-1] == ["20", WARM, "resnet20, resnet8 on image PIs"] and "KL mean" in tgd_warm[-1], tgd_warm
    assert "‡ The PI teacher reached only 15.0 % on the image PIs (chance 10 %)" in table, table
    (note,) = [line for line in table.splitlines() if line.startswith("TGD from scratch:")]
    # KD: 1.0 x KL / batch; TGD: 0.9 x 0.99 x KL / (batch x 10 classes) -> 10 / 0.891 = 11.2 times weaker
    assert "CE by 0.1 (KD: 1)" in note and "11.2 times weaker" in note, note

    paired = paired_table(rows)
    got = {tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[3:-1]]
           for line in paired.splitlines()[2:]}
    assert list(got) == [("KD+TopKD", "KD"), ("TGD", "KD"), ("TGD, warm-started", "KD, warm-started")], paired
    for (method, init), base in [(("KD+TopKD", SCRATCH), ("KD", SCRATCH)), (("TGD", SCRATCH), ("KD", SCRATCH)),
                                 (("TGD", WARM), ("KD", WARM))]:
        cells = got[(method if init == SCRATCH else method + ", warm-started",
                     "KD" if init == SCRATCH else "KD, warm-started")]
        assert cells[0] == "3", cells
        assert cells[1] == paired_difference(best[(method, init)], best[base]).text(2), cells
        assert cells[2] == paired_difference([b - 0.5 for b in best[(method, init)]],
                                             [b - 0.5 for b in best[base]]).text(2), cells
        assert cells[-2] == "-0.0500 [-0.0500, -0.0500], p 0", cells  # CKA: 0.05 below KD in every seed
        assert cells[3] == "-"  # no bottleneck values
    assert "(CI holds 0)" in got[("KD+TopKD", "KD")][1] and "CI holds 0" not in got[("TGD", "KD")][1], paired


def test_rows_of_other_teachers_or_seeds_are_not_paired():
    from tools.quickstart import paired_table

    rows, _ = synthetic_rows()
    for r in rows:
        if r["method"] == "KD+TopKD":
            r["config"] = dict(r["config"], path_t="other.pth")
        if r["method"] == "TGD" and r["seed"] == 2 and r["init"] == "scratch":
            r["config"] = dict(r["config"], seed=7)
    paired = paired_table(rows)
    assert "| KD+TopKD |" not in paired, paired
    assert "| TGD | KD | 2 |" in paired and "| TGD, warm-started | KD, warm-started | 3 |" in paired, paired


def test_pi_window_covers_the_data_not_tgds_default():
    """Was: TGD's default window [0, 0.3] x [0, 0.3], which left most of the digits' diagram points outside."""
    import numpy as np

    from tools.quickstart import pi_window, share_outside

    rng = np.random.default_rng(0)
    births = rng.uniform(0.0, 0.6, 2000)
    diagrams = [np.stack([births, births + rng.uniform(0.0, 0.9, 2000)], axis=1)[i::50] for i in range(50)]
    diagrams.append(np.array([[5.0, 9.0]]))  # one outlier does not widen the window
    window = pi_window(diagrams)
    assert window == (0.0, 0.6, 0.0, 0.9), window
    assert share_outside(diagrams, window) <= 0.02
    assert share_outside(diagrams, (0.0, 0.3, 0.0, 0.3)) > 0.5
    narrower = pi_window(diagrams, coverage=0.5)
    assert narrower == (0.0, 0.3, 0.0, 0.45), narrower  # medians 0.3 and 0.45, rounded up to 0.05
    assert pi_window([np.zeros((3, 2))]) == (0.0, 0.05, 0.0, 0.05)  # never an empty window
    with pytest.raises(ValueError, match="no diagram points"):
        pi_window([np.zeros((0, 2))])


def test_paired_rows_name_what_else_differs_from_the_recorded_identities():
    """TGD trains with its own recipe (no augmentation, weight decay 1e-4, ...): its paired difference from KD is
    not the method's alone, and the table says so, read from each run's recorded identity, never from a list."""
    from tools.quickstart import paired_table

    rows, _ = synthetic_rows()
    for r in rows:
        if r["role"] != "student":
            continue
        options = dict(seed=r["seed"], trial=r["seed"], epochs=r["config"]["epochs"], weight_decay=5e-4,
                       alpha=r["config"]["alpha"], gamma=r["config"]["gamma"], distill=r["method"].lower())
        if r["method"] == "TGD":
            options.update(weight_decay=1e-4, tgd_alpha=0.99)
        r["config"] = dict(r["config"], identity=dict(options=options, inputs={"path_t": "t-sha"}))
    lines = {line.split("|")[1].strip(): line for line in paired_table(rows).splitlines()[2:]}
    assert lines["TGD"].rstrip(" |").endswith("weight_decay"), lines["TGD"]
    assert lines["TGD, warm-started"].rstrip(" |").endswith("weight_decay")
    assert lines["KD+TopKD"].rstrip(" |").endswith("-"), lines["KD+TopKD"]
