"""tools/figures.py: every figure is a non-empty PNG of the documented pixel size (tiny random models)."""
import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import yaml

from topkd_io import save_torch
from models import model_dict
from tools import figures
from topology.point_cloud_pi import PIParams
from topology.persistence import rips_h0_deaths
from topology.ripsnet import RipsNet, save_ripsnet

IMAGE_SIZE = 16


def save_net(path, arch, seed, extras=None, config=None):
    torch.manual_seed(seed)
    model = model_dict[arch](num_classes=10)
    save_torch({"model": model.state_dict(), "arch": arch, "num_classes": 10, "dataset": "digits",
                     "epoch": 1, "best_acc": 10.0, "last_acc": 10.0, "distiller": extras or {},
                     "config": {"dataset": "digits", "image_size": IMAGE_SIZE, **(config or {})}}, str(path))
    return model.eval()


def write_tb(run_dir, offset):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / "tb")) as w:
        for epoch in range(1, 4):
            w.add_scalar("test/top1", 10.0 * epoch + offset, epoch)
            w.add_scalar("train/top1", 12.0 * epoch, epoch)
            w.add_scalar("train/loss", 3.0 / epoch, epoch)
            w.add_scalar("train/loss_ce", 2.0 / epoch, epoch)
            w.add_scalar("train/loss_kd", 1.0 / epoch + offset, epoch)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A miniature tools/quickstart.py folder: teacher, stage-2 manifest, RipsNet, one student with logs."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("quickstart")
    teacher = save_net(out / "teacher" / "resnet20_best.pth", "resnet20", 0)
    save_net(out / "students" / "KD_TopKD" / "resnet8_best.pth", "resnet8", 1,
             config={"distill": "kd", "alpha": 2.0, "delta": 5.0, "method": "topkd", "path_t": "t.pth"})
    write_tb(out / "teacher", 0.0)
    write_tb(out / "students" / "KD_TopKD", 1.0)
    # PI parameters fitted on the teacher's own clouds (as stage 2 does), kept in a stage-2 style manifest
    with torch.no_grad():
        feats, _ = teacher(torch.randn(4 * 64, 3, IMAGE_SIZE, IMAGE_SIZE), is_feat=True)
    deaths = rips_h0_deaths(feats[-1].reshape(4, 64, -1).double().numpy())
    params = PIParams.fit([np.stack([np.zeros_like(d), d], 1) for d in deaths], homology_dim=0)
    (out / "pcd").mkdir()
    from pcd.manifest import write_manifest  # sealed, as stage 2 writes it

    write_manifest(str(out / "pcd"), {"format": "topkd-stage2-v1",
                                      "pi": {0: {"file": "pi_dim0.npy", "params": params.to_dict()}}})
    torch.manual_seed(2)
    save_ripsnet(RipsNet(64, pooling="mean"), out / "ripsnet" / "mean_best.pth", pi_params=params)
    return out


def png_shape(path):
    assert path.is_file() and path.stat().st_size > 1000
    img = mpimg.imread(str(path))
    assert img.std() > 0  # not a blank canvas
    return img.shape[:2]


@pytest.fixture()
def saved_figures(monkeypatch):
    """The matplotlib Figures the figure functions save (they are still written)."""
    seen = []
    real = figures._save

    def keep(fig, out):
        seen.append(fig)
        return real(fig, out)

    monkeypatch.setattr(figures, "_save", keep)
    return seen


def test_pi_grid(quick, tmp_path, saved_figures, capsys):
    # 360 test digits hold 2 full batches of 128: 3 rows asked, 2 shown, said in one line
    out = figures.pi_grid(quick / "teacher" / "resnet20_best.pth", quick / "students" / "KD_TopKD" / "resnet8_best.pth",
                          quick / "ripsnet" / "mean_best.pth", tmp_path / "grid.png", rows=3, batch_size=128)
    note = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(note) == 1 and "showing 2 rows instead of 3" in note[0], note
    assert png_shape(out) == (2 * 250, 4 * 250)  # 2.5-inch panels at 100 dpi
    axes = saved_figures[-1].axes
    images = [ax for ax in axes if ax.images]
    bars = [ax for ax in axes if not ax.images and ax.get_ylabel() == "PI value"]
    assert len(images) == 2 * 4 and len(bars) == 2  # one colour bar per row
    assert all(ax.get_xlabel() == "birth" and ax.get_ylabel() == "persistence" for ax in images)
    assert images[0].get_title().startswith("batch 1: teacher exact (BN batch)")  # the manifest names no mode: batch
    figures.pi_grid(quick / "teacher" / "resnet20_best.pth", quick / "students" / "KD_TopKD" / "resnet8_best.pth",
                    quick / "ripsnet" / "mean_best.pth", tmp_path / "grid_eval.png", rows=1, batch_size=32,
                    teacher_bn="eval")
    assert "teacher exact (BN eval)" in [ax for ax in saved_figures[-1].axes if ax.images][0].get_title()


def test_pi_grid_names_points_outside_the_stage2_range():
    params = PIParams(bandwidth=0.1, im_range=(0.0, 0.0, 0.5, 2.0))
    assert figures.outside_range(np.array([0.6, 1.0, 2.05]), params) == ""
    note = figures.outside_range(np.array([0.6, 260.0, 15795.0]), params)
    assert "2/3 points outside the stage-2 range [0.5, 2]" in note and "1.58e+04" in note


def test_teacher_bn_follows_the_stage2_manifest(tmp_path):
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({"config": {"teacher_bn": "eval"}, "pi": {}}))
    assert figures.stage2_teacher_bn(tmp_path) == "eval"
    assert figures.stage2_teacher_bn(None, {"manifest": {"config": {"teacher_bn": "eval"}}}) == "eval"
    assert figures.stage2_teacher_bn(None, {"manifest": {}}) == "batch"


def test_embedding(quick, tmp_path, saved_figures):
    out = figures.embedding(quick / "teacher" / "resnet20_best.pth",
                            quick / "students" / "KD_TopKD" / "resnet8_best.pth", tmp_path / "emb.png",
                            max_points=60, method="tsne")
    assert png_shape(out) == (500, 1000)
    titles = [ax.get_title() for ax in saved_figures[-1].axes[:2]]
    assert titles[0].startswith("teacher (resnet20, CE), t-SNE")
    assert titles[1].startswith("student (resnet8, kd+topkd), t-SNE")
    legend, = saved_figures[-1].legends
    assert legend.get_title().get_text() == "class" and len(legend.get_texts()) == 10


def test_diagrams(quick, tmp_path, saved_figures):
    teacher = quick / "teacher" / "resnet20_best.pth"
    out = figures.diagrams(teacher, [quick / "students" / "KD_TopKD" / "resnet8_best.pth", teacher],
                           tmp_path / "dg.png", labels=["KD+TopKD", "teacher itself"], batch_size=32)
    assert png_shape(out) == (350, 2 * 350)
    axes = [ax for ax in saved_figures[-1].axes if ax.get_visible()]
    assert [ax.get_title().splitlines()[0] for ax in axes] == ["KD+TopKD", "teacher itself"]
    assert "H0: bottleneck 0.000, W1 0.000" in axes[1].get_title()
    assert "H0: bottleneck 0.000" not in axes[0].get_title() and "H1: bottleneck" in axes[0].get_title()
    assert axes[0].get_xlabel() == "birth / diameter"


def test_curves(quick, tmp_path, saved_figures):
    out = figures.curves([quick / "teacher", quick / "students" / "KD_TopKD"], tmp_path / "curves.png")
    # panels: test top-1, train/loss, train/loss_ce, train/loss_kd -> 3 columns x 2 rows of 4 x 3 inches
    assert png_shape(out) == (2 * 300, 3 * 400)
    panels = [ax for ax in saved_figures[-1].axes if ax.get_visible()]
    assert len(panels) == 4
    colours = {}
    for ax in panels:
        legend = ax.get_legend()
        assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["teacher", "KD_TopKD"]
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert all(len(c) == 1 for c in colours.values()) and len(set.union(*colours.values())) == 2
    scalars = figures.read_scalars(quick / "students" / "KD_TopKD")
    np.testing.assert_allclose(scalars["test/top1"][1], [11.0, 21.0, 31.0])
    assert figures.curve_tags(list(scalars)) == ["test/top1", "train/loss", "train/loss_ce", "train/loss_kd"]


@pytest.mark.slow
def test_quickstart_figures_and_skips(quick, tmp_path, capsys):
    written = figures.quickstart_figures(quick, embedding_method="tsne")  # UMAP's JIT costs a minute
    assert [p.name for p in written] == ["pi_grid.png", "embedding.png", "curves.png", "diagrams.png"]
    for p in written:
        png_shape(p)
    # a folder without RipsNet and students: only the curves of the teacher, with notes for the rest
    partial = tmp_path / "partial"
    (partial / "teacher").mkdir(parents=True)
    for f in (quick / "teacher").iterdir():
        if f.is_file():
            (partial / "teacher" / f.name).write_bytes(f.read_bytes())
    write_tb(partial / "teacher", 0.0)
    written = figures.quickstart_figures(partial, embedding_method="tsne")
    assert [p.name for p in written] == ["curves.png"]
    assert "skipped pi_grid.png" in capsys.readouterr().out


def test_student_projector_and_errors(tmp_path):
    w, b = torch.randn(64, 16), torch.randn(64)
    proj = figures.student_projector({"distiller": {"terms.loss_tda.proj.weight": w, "terms.loss_tda.proj.bias": b}},
                                     16, 64)
    x = torch.randn(5, 16)
    torch.testing.assert_close(proj(x), x @ w.T + b)
    assert figures.student_projector({}, 16, 64) is None
    with pytest.raises(FileNotFoundError, match="TensorBoard"):
        figures.read_scalars(tmp_path)
    with pytest.raises(ValueError, match="embedding method"):
        figures.pick_reducer("pca")
    with pytest.raises(FileNotFoundError, match="manifest"):
        figures.load_pi_params(tmp_path / "nowhere")


def _boxes_apart(fig):
    """Window boxes of every title (panel titles and the figure's) after drawing: none intersects another
    title or any panel's axes, and all lie inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()  # lays the figure out as the saved PNG was
    renderer = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.get_visible() and ax.get_title()]
    titles += list(fig.texts)  # the figure's title
    boxes = [t.get_window_extent(renderer) for t in titles]
    panels = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
    whole = fig.bbox
    for i, box in enumerate(boxes):
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, (
            titles[i].get_text(), box, whole)
        for j, other in enumerate(boxes[i + 1:], i + 1):
            assert not box.overlaps(other), (titles[i].get_text(), titles[j].get_text())
        for panel in panels:
            assert not box.overlaps(panel), (titles[i].get_text(), panel)
    return titles


@pytest.mark.parametrize("count", [1, 3])
def test_diagram_titles_never_overlap(quick, tmp_path, saved_figures, count):
    """Was: the default titles (run folder and method) ran into each other and past the figure."""
    students = []
    for k in range(count):
        folder = tmp_path / f"S-resnet8_T-resnet20_digits_kd_r-1.0_a-1.0_d-5.0_dim-0_trial_{k}-1a2b3c4d"
        folder.mkdir()
        students.append(folder / "resnet8_best.pth")
        students[-1].write_bytes((quick / "students" / "KD_TopKD" / "resnet8_best.pth").read_bytes())
    figures.diagrams(quick / "teacher" / "resnet20_best.pth", students, tmp_path / "dg.png", batch_size=32)
    titles = _boxes_apart(saved_figures[-1])
    # nothing left out: each panel's title still names its run folder and method, on several lines
    for k, ax in enumerate(a for a in saved_figures[-1].axes if a.get_visible()):
        assert ax.get_title().replace("\n", "").startswith(students[k].parent.name + " (kd+topkd)")
    assert len(titles) == count + 1


def _run_folder(folder, offset, **config):
    """A run folder with a config.yaml recording ``config`` and TensorBoard curves."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    write_tb(folder, offset)
    return folder


def test_curves_label_runs_by_method_and_trial_and_name_skipped_runs(tmp_path, saved_figures, caplog):
    """Was: every student of the quickstart was labelled by its folder, `seed_0`; a run without usable logs
    was left out without a word."""
    student = dict(arch="resnet8", model_s="resnet8", model_t="resnet20", path_t="t/resnet20_best.pth", trial=0,
                   distill="kd", alpha=1.0, identity={"inputs": {"path_t": "ab" * 32}})
    runs = [_run_folder(tmp_path / "teacher", 0.0, arch="resnet20", model="resnet20", trial=0),
            _run_folder(tmp_path / "KD" / "seed_0", 1.0, **student),
            _run_folder(tmp_path / "KD_TopKD" / "seed_0", 2.0, **student, delta=5.0, method="topkd"),
            _run_folder(tmp_path / "KD_TopKD" / "seed_1", 3.0, **{**student, "trial": 1}, delta=5.0, method="topkd")]
    empty = tmp_path / "broken" / "seed_0"
    empty.mkdir(parents=True)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "other" / "tb")) as w:  # logs, but of nothing the curves show
        w.add_scalar("train/top1", 1.0, 1)
    with caplog.at_level("WARNING"):
        figures.curves(runs + [empty, tmp_path / "other"], tmp_path / "curves.png")
    want = ["resnet20 CE trial 0", "resnet8 kd trial 0", "resnet8 kd+topkd trial 0", "resnet8 kd+topkd trial 1"]
    for ax in (a for a in saved_figures[-1].axes if a.get_visible()):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == want
    skipped = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(skipped) == 2 and str(empty) in skipped[0] and "TensorBoard" in skipped[0], skipped
    assert str(tmp_path / "other") in skipped[1] and "no test/top1 or train/* scalars" in skipped[1]
    # students of two teachers: the teacher joins the label
    other = _run_folder(tmp_path / "KD_other" / "seed_0", 4.0,
                        **{**student, "model_t": "resnet56", "identity": {"inputs": {"path_t": "cd" * 32}}})
    figures.curves(runs[1:2] + [other], tmp_path / "curves2.png")
    legend = [t.get_text() for t in saved_figures[-1].axes[0].get_legend().get_texts()]
    assert legend == ["resnet8 kd trial 0, teacher resnet20 abababab", "resnet8 kd trial 0, teacher resnet56 cdcdcdcd"]
    with pytest.raises(ValueError, match="no usable"):
        figures.curves([empty], tmp_path / "none.png")


def test_rank_one_figure_and_its_factors_reproduce_the_images(tmp_path, saved_figures):
    """rank-one on a tiny stage-2 folder (two shards, H0 and H1): a PNG of one row per dimension, and the H0 factors
    it plots, computed from the diagram alone, multiply back to the stored image and to gudhi's own image."""
    import generate_PCD_PI
    from gudhi.representations import PersistenceImage

    rng = np.random.default_rng(0)
    np.save(tmp_path / "c.npy", (rng.normal(size=(6, 32, 8)) * rng.uniform(0.5, 2, (6, 1, 1))).astype(np.float32))
    stage2 = tmp_path / "s2"
    generate_PCD_PI.main(["--pcd", str(tmp_path / "c.npy"), "--dims", "0", "1", "--shard_size", "4", "--out_dir",
                          str(stage2), "--no_progress"])
    out = figures.main(["rank-one", "--stage2", str(stage2 / "manifest.yaml"), "--cloud", "5", "--out",
                        str(tmp_path / "rank.png")])
    assert png_shape(out) == (2 * 260, 4 * 300)  # 3 x 2.6-inch panels at 100 dpi, one row per dimension
    titles = [ax.get_title() for ax in saved_figures[-1].axes]
    assert titles[0].startswith("H0 image of cloud 5 (31 points)") and titles[4].startswith("H1 image of cloud 5")
    s2_s1 = [float(t.split("s2/s1 = ")[1].rstrip(")")) for t in titles if "s2/s1" in t]
    assert s2_s1[0] < 1e-12 and s2_s1[1] > 1e-3  # H0: one nonzero singular value; H1: several

    from pcd.manifest import open_verified, pi_entry

    manifest = open_verified(str(stage2), (0, 1))
    image, diagram, params = figures.stage2_cloud(stage2, manifest, 0, 5)  # cloud 5: the second shard's second cloud
    birth, death = figures.h0_factors(diagram, params)
    np.testing.assert_allclose(np.outer(death, birth), image, rtol=1e-6, atol=1e-7)  # the float32 file
    gudhi_image = PersistenceImage(bandwidth=params.bandwidth, resolution=list(params.resolution),
                                   im_range=list(params.im_range),
                                   weight=lambda pt: 10 * np.tanh(pt[1]) + 10 * np.log(100 * pt[0] + 1))
    expected = gudhi_image.fit_transform([diagram])[0] / params.normalizer
    np.testing.assert_allclose(np.outer(death, birth).ravel(), expected, rtol=1e-10, atol=1e-14)

    with pytest.raises(ValueError, match="births are not 0"):
        figures.h0_factors(figures.stage2_cloud(stage2, manifest, 1, 5)[1], params)
    with pytest.raises(ValueError, match="out of range"):
        figures.rank_one(stage2, tmp_path / "x.png", cloud=6)
    # a stored image overwritten at the same size: refused before it is drawn (its SHA-256 no longer matches)
    pi_file = stage2 / pi_entry(manifest, 0)["file"]
    data = bytearray(pi_file.read_bytes())
    data[-4:] = bytes(4)
    pi_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256|SHA-256"):
        figures.rank_one(stage2, tmp_path / "y.png", cloud=0)
