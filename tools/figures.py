"""Figures for TopKD runs (matplotlib, PNG; pixel size = panel inches x ``dpi``).

    python tools/figures.py pi-grid --teacher T.pth --student S.pth --ripsnet R.pth [--pi_params manifest.yaml]
    python tools/figures.py embedding --teacher T.pth --student S.pth [--max_points 2000]
    python tools/figures.py curves RUN_DIR [RUN_DIR ...]
    python tools/figures.py diagrams --teacher T.pth --students S1.pth S2.pth ... [--labels KD TopKD ...]
    python tools/figures.py rank-one --stage2 ripsnet/data/<stage-2 folder> [--cloud 0]
    python tools/figures.py quickstart runs/quickstart

``pi-grid``: exact vs RipsNet persistence images of the topology measurement's test batches, teacher and student
(the TopKD paper's figure). ``embedding``: UMAP (or t-SNE) maps of both networks' pooled embeddings coloured by class.
``curves``: test top-1 and every training loss term per epoch from the runs' TensorBoard logs. ``diagrams``: the
teacher's and each student's persistence diagrams of one fixed test batch, with their distances. ``rank-one``: one
stage-2 cloud's H0 (and H1) image, its birth and death factors and its singular values (docs/topology.md).
"""
import argparse
import logging
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from matplotlib.figure import Figure  # drawn without pyplot: no GUI backend is ever chosen
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from matplotlib.ticker import MaxNLocator
from torch.utils.data import DataLoader, Subset

from datasets import build_datasets
from engine.config import recorded_data_options
from engine.topo_eval import embed as embed_layer, probe_indices
from models import load_model
from pcd.manifest import load_diagrams, manifest_path, open_verified, pi_entry, read_manifest, read_pi_params
from pcd.sources import set_teacher_bn
from tools.collect_results import method_key, read_dict
from topkd_io import TopKDError, check_output_file, run_cli
from topology import metrics
from topology.persistence import rips_h0_deaths
from topology.point_cloud_pi import PIParams, finite_rows, get_weight, persistence_images
from topology.ripsnet import load_ripsnet

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
DPI = 100
PI_PANEL_INCHES = 2.5          # each persistence-image panel is 2.5 x 2.5 in
EMBEDDING_INCHES = (10.0, 5.0)  # two square maps side by side
CURVE_PANEL_INCHES = (4.0, 3.0)
CURVE_COLUMNS = 3


def _save(fig: Figure, out: PathLike) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=fig.dpi)  # no bbox_inches: the pixel size stays figsize x dpi
    return out


# ------------------------------------------------------------------------------------------------
# inputs: networks, data, persistence-image parameters
# ------------------------------------------------------------------------------------------------
def load_networks(teacher: PathLike, student: PathLike, dataset: Optional[str] = None,
                  data_root: str = "./data", image_size: Optional[int] = None):
    """-> (teacher model, teacher ckpt, student model, student ckpt, data bundle), models in eval mode; the data
    set and image size default to the teacher's."""
    model_t, arch_t, ckpt_t = load_model(str(teacher))
    model_s, arch_s, ckpt_s = load_model(str(student))
    ckpt_t, ckpt_s = dict(ckpt_t, arch=arch_t), dict(ckpt_s, arch=arch_s)  # official files name no arch
    record = ckpt_t.get("config") if isinstance(ckpt_t.get("config"), dict) else {}
    dataset = dataset or ckpt_t.get("dataset") or record.get("dataset")
    if not dataset:
        raise TopKDError(f"cannot tell the data set of {teacher}; pass --dataset")
    data = build_datasets(dataset, data_root, download=False,
                          **recorded_data_options(record, dataset, image_size=image_size))
    for name, model in (("teacher", model_t), ("student", model_s)):
        classes = model(torch.zeros(1, data.in_channels, data.image_size, data.image_size)).shape[1]
        if classes != data.num_classes:
            raise TopKDError(f"the {name} has {classes} classes but {dataset} has {data.num_classes}; "
                             f"pass the --dataset it was trained on")
    return model_t, ckpt_t, model_s, ckpt_s, data


@torch.no_grad()
def embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pooled embedding (``feats[-1]``, the FC input) of a batch ``[B, C, H, W]`` -> ``[B, D]`` float32."""
    feats, _ = model(images, is_feat=True)
    return feats[-1].flatten(1).float()


def student_projector(ckpt_s: Dict, dim_s: int, dim_t: int) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """The TopKD projector ``[*, dim_s] -> [*, dim_t]`` saved with a student (identity when widths agree)."""
    if dim_s == dim_t:
        return lambda f: f
    extras = ckpt_s.get("distiller") or {}
    for key, weight in extras.items():
        if key.endswith("proj.weight") and tuple(weight.shape) == (dim_t, dim_s):
            bias = extras.get(key[: -len("weight")] + "bias")
            return lambda f, w=weight.float(), b=bias: torch.nn.functional.linear(
                f, w, None if b is None else b.float())
    return None


def load_pi_params(source=None, ripsnet_ckpt: Optional[Dict] = None, dim: int = 0):
    """PIParams from a stage-2 folder / ``manifest.yaml``, a PI-parameter YAML, or the RipsNet checkpoint."""
    if source is not None:
        return read_pi_params(os.fspath(source), dim, files=False)  # the parameters alone (the manifest's seal)
    if ripsnet_ckpt and ripsnet_ckpt.get("pi_params"):
        return PIParams.from_dict(ripsnet_ckpt["pi_params"])
    raise TopKDError("no persistence-image parameters: pass --pi_params (the stage-2 manifest.yaml); "
                     "this RipsNet checkpoint does not carry them")


def h0_deaths(cloud: torch.Tensor) -> np.ndarray:
    """Finite H0 deaths of one cloud ``[N, D]`` (births are 0), ascending."""
    return rips_h0_deaths(cloud.double().numpy()[None])[0]


def exact_pi(cloud: torch.Tensor, params) -> np.ndarray:
    """Exact H0 persistence image of one cloud ``[N, D]`` -> ``[R0 * R1]`` (normalized like the training data)."""
    deaths = h0_deaths(cloud)
    diagram = np.stack([np.zeros_like(deaths), deaths], axis=1)
    return persistence_images([diagram], params)[0]


def outside_range(deaths: np.ndarray, params) -> str:
    """A title note when H0 points ``(0, death)`` fall outside the image's persistence range (by more than one
    bandwidth, where their Gaussians no longer reach the grid); "" otherwise."""
    _, _, y0, y1 = params.im_range
    far = (deaths < y0 - params.bandwidth) | (deaths > y1 + params.bandwidth)
    if not far.any():
        return ""
    return (f"\n{int(far.sum())}/{len(deaths)} points outside the stage-2 range "
            f"[{y0:.3g}, {y1:.3g}] (deaths {deaths.min():.3g}-{deaths.max():.3g})")


def stage2_teacher_bn(pi_params=None, ripsnet_ckpt: Optional[Dict] = None) -> str:
    """How stage 2 embedded the teacher: the ``teacher_bn`` of its manifest (a stage-2 folder / manifest.yaml, else
    the one the RipsNet checkpoint carries), else ``batch`` (stage 2's default)."""
    candidates = [(ripsnet_ckpt or {}).get("manifest")]
    if pi_params is not None:  # unreadable: the PI parameters' own reader says why
        path = Path(pi_params)
        candidates.insert(0, read_dict(Path(manifest_path(str(path))) if path.is_dir() else path))
    for manifest in candidates:
        cfg = manifest.get("config") if isinstance(manifest, dict) else None
        if isinstance(cfg, dict) and cfg.get("teacher_bn") in ("batch", "eval"):
            return cfg["teacher_bn"]
    return "batch"


def probe_batches(test_set, batch_size: int, count: int) -> List[torch.Tensor]:
    """The images ``[B, C, H, W]`` of the first ``count`` batches of the topology measurement
    (`engine.topo_eval.probe_indices`); fewer is said in a note."""
    batches = probe_indices(len(test_set), count, batch_size)
    if len(batches) < count:
        print(f"note: the test set ({len(test_set)} images) holds {len(batches)} full batch(es) of {batch_size}: "
              f"showing {len(batches)} rows instead of {count}", flush=True)
    return [torch.stack([test_set[i][0] for i in batch]) for batch in batches]


# ------------------------------------------------------------------------------------------------
# figure 1: exact vs RipsNet persistence images
# ------------------------------------------------------------------------------------------------
def _mse(a: Optional[np.ndarray], b: np.ndarray) -> str:
    return "n/a" if a is None else f"{float(np.mean((a - b) ** 2)):.2e}"


def pi_grid(teacher: PathLike, student: PathLike, ripsnet: PathLike, out: PathLike = "pi_grid.png",
            pi_params=None, dataset: Optional[str] = None, data_root: str = "./data",
            image_size: Optional[int] = None, rows: int = 3, batch_size: int = 64, dpi: int = DPI,
            teacher_bn: Optional[str] = None) -> Path:
    """Persistence images, one row per test batch (a cloud of ``batch_size`` embeddings): teacher exact, teacher
    RipsNet, student exact, student RipsNet (through its TopKD projector), each titled with its MSE against the
    exact image (the student's exact one: against the teacher's) and marked when its diagram leaves the
    parameters' range; birth x persistence axes, one colour bar per row. ``teacher_bn``: the teacher's BatchNorm
    while embedding (default: as stage 2 did, `stage2_teacher_bn`); the student is in eval mode."""
    if rows < 1:
        raise TopKDError(f"rows must be >= 1, got {rows}")
    model_t, _, model_s, ckpt_s, data = load_networks(teacher, student, dataset, data_root, image_size)
    rips, rips_ckpt = load_ripsnet(ripsnet)
    params = load_pi_params(pi_params, rips_ckpt)
    teacher_bn = teacher_bn or stage2_teacher_bn(pi_params, rips_ckpt)
    set_teacher_bn(model_t, teacher_bn)
    side = params.resolution  # (R0 births, R1 persistences); images are rows = persistence
    panels = []
    for images in probe_batches(data.test, batch_size, rows):
        f_t, f_s = embed(model_t, images), embed(model_s, images)
        if f_t.shape[1] != rips.input_dim:
            raise TopKDError(f"the RipsNet takes {rips.input_dim}-d points but the teacher's embedding is "
                             f"{f_t.shape[1]}-d: pass the RipsNet trained on this teacher")
        proj = student_projector(ckpt_s, f_s.shape[1], f_t.shape[1])
        g_s = f_s if proj is None else proj(f_s)  # no projector to the teacher's width: the raw embedding's image
        with torch.no_grad():
            t_exact, t_rips = exact_pi(f_t, params), rips(f_t)[0].double().numpy()
            s_exact, s_rips = exact_pi(g_s, params), None if proj is None else rips(g_s)[0].double().numpy()
        panels.append([(f"teacher exact (BN {teacher_bn}){outside_range(h0_deaths(f_t), params)}", t_exact),
                       (f"teacher RipsNet\nMSE {_mse(t_rips, t_exact)}", t_rips),
                       (f"student exact\nMSE vs teacher {_mse(s_exact, t_exact)}"
                        f"{outside_range(h0_deaths(g_s), params)}", s_exact),
                       (f"student RipsNet\nMSE {_mse(s_rips, s_exact)}", s_rips)])
    fig = Figure(figsize=(4 * PI_PANEL_INCHES, len(panels) * PI_PANEL_INCHES), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(panels), 4, squeeze=False)
    x0, x1, y0, y1 = params.im_range
    if x1 <= x0:  # H0: every birth is 0, the birth range is a point; show one bandwidth either side
        x0, x1 = x0 - params.bandwidth, x1 + params.bandwidth
    for r, row in enumerate(panels):
        top = max(float(np.max(img)) for _, img in row if img is not None) or 1.0
        shown = None
        for c, (title, img) in enumerate(row):
            ax = axes[r][c]
            ax.set_title(f"batch {r + 1}: {title}" if c == 0 else title, fontsize=7)
            if img is None:
                ax.set_xticks([]), ax.set_yticks([])
                ax.text(0.5, 0.5, "no projector\nto the teacher width", ha="center", va="center", fontsize=8)
                continue
            shown = ax.imshow(img.reshape(side[1], side[0]), origin="lower", aspect="auto", vmin=0.0, vmax=top,
                              cmap="viridis", extent=(x0, x1, y0, y1))
            ax.set_xlabel("birth", fontsize=7)
            ax.set_ylabel("persistence", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.xaxis.set_major_locator(MaxNLocator(3))
        if shown is not None:
            bar = fig.colorbar(shown, ax=list(axes[r]), shrink=0.9, pad=0.01)
            bar.ax.tick_params(labelsize=6)
            bar.set_label("PI value", fontsize=7)
    return _save(fig, out)


# ------------------------------------------------------------------------------------------------
# figure 2: 2-D embeddings
# ------------------------------------------------------------------------------------------------
def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    import umap  # on first use: umap-learn (optional) takes ~2.5 s to import

    threads = torch.get_num_threads()  # numba's OpenMP layer resets the shared thread count; put it back
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    finally:
        torch.set_num_threads(threads)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE  # on first use: ~0.1 s after scikit-learn, ~10 s without

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x)


REDUCERS: Dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"umap": _umap, "tsne": _tsne}


def pick_reducer(method: str = "umap") -> str:
    """``method`` (``umap``, the paper's, or ``tsne``) checked."""
    if method not in REDUCERS:
        raise TopKDError(f"unknown embedding method {method!r}; choose one of: {', '.join(REDUCERS)}")
    return method


def training_method(ckpt: Dict) -> Optional[str]:
    """How a checkpoint's network was trained, from its saved config: ``kd+topkd``, ``crd``, ``tgd``, ... for
    students (the collector's method names), ``CE`` for teachers; None when the checkpoint does not say."""
    cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    if cfg.get("distill"):
        return method_key(cfg)
    return "CE" if cfg and "path_t" not in cfg else None  # train_teacher.py: plain cross-entropy


@torch.no_grad()
def _all_embeddings(model_t, model_s, test_set, max_points: int, seed: int, batch_size: int = 256):
    n = len(test_set)
    keep = np.sort(np.random.default_rng(seed).permutation(n)[: min(max_points, n)])
    loader = DataLoader(Subset(test_set, keep.tolist()), batch_size=batch_size, shuffle=False)
    ft, fs, ys = [], [], []
    for batch in loader:
        ft.append(embed(model_t, batch[0]))
        fs.append(embed(model_s, batch[0]))
        ys.append(torch.as_tensor(batch[1]))
    return torch.cat(ft).numpy(), torch.cat(fs).numpy(), torch.cat(ys).numpy()


def embedding(teacher: PathLike, student: PathLike, out: PathLike = "embedding.png", dataset: Optional[str] = None,
              data_root: str = "./data", image_size: Optional[int] = None, max_points: int = 2000,
              method: str = "umap", seed: int = 0, dpi: int = DPI) -> Path:
    """Teacher and student embeddings (``feats[-1]``) of at most ``max_points`` test images (a fixed subset) mapped
    to 2-D by ``method`` (umap, the paper's, or tsne), side by side, coloured by class, titled with each network's
    architecture and training method."""
    if max_points < 5:
        raise TopKDError(f"--max_points must be at least 5, got {max_points}")
    reducer = pick_reducer(method)
    model_t, ckpt_t, model_s, ckpt_s, data = load_networks(teacher, student, dataset, data_root, image_size)
    f_t, f_s, labels = _all_embeddings(model_t, model_s, data.test, max_points, seed)
    fig = Figure(figsize=EMBEDDING_INCHES, dpi=dpi)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    cmap = "tab10" if data.num_classes <= 10 else "tab20" if data.num_classes <= 20 else "turbo"
    for ax, name, feats, ckpt in ((axes[0], "teacher", f_t, ckpt_t), (axes[1], "student", f_s, ckpt_s)):
        xy = REDUCERS[reducer](feats.astype(np.float64), seed)
        points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap=cmap, s=6, vmin=-0.5,
                            vmax=data.num_classes - 0.5)
        how = ", ".join(t for t in (ckpt.get("arch") or "?", training_method(ckpt)) if t)
        ax.set_title(f"{name} ({how}), {reducer.upper() if reducer == 'umap' else 't-SNE'}, "
                     f"{len(labels)} test images", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    if data.num_classes <= 20:
        handles, _ = points.legend_elements(num=data.num_classes)
        fig.legend(handles, [str(k) for k in range(len(handles))], loc="center right", fontsize=7, title="class")
        fig.tight_layout(rect=(0, 0, 0.93, 1))
    else:  # too many classes for a legend: a colour bar of the class index
        fig.tight_layout(rect=(0, 0, 0.92, 1))
        bar = fig.colorbar(points, ax=list(axes), fraction=0.03, pad=0.02)
        bar.set_label("class", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    return _save(fig, out)


# ------------------------------------------------------------------------------------------------
# figure 3: training curves
# ------------------------------------------------------------------------------------------------
def _tb_dir(run_dir: PathLike) -> Path:
    run_dir = Path(run_dir)
    for cand in (run_dir / "tb", run_dir):
        if cand.is_dir() and any(p.name.startswith("events.out.tfevents") for p in cand.iterdir()):
            return cand
    raise FileNotFoundError(f"no TensorBoard event files in {run_dir} or {run_dir / 'tb'}; pass a run folder "
                            f"written by train_teacher.py / train_student.py")


def read_scalars(run_dir: PathLike) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Every scalar of a run's ``tb/`` logs -> ``{tag: (epochs, values)}`` (the last value per epoch wins)."""
    # tensorboard's reader only for the curves figure (0.15 s of start-up otherwise)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(_tb_dir(run_dir)), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        by_step = {e.step: e.value for e in acc.Scalars(tag)}
        steps = np.array(sorted(by_step))
        out[tag] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
    return out


def curve_tags(tags: Sequence[str]) -> List[str]:
    """Panels: test top-1 first, then the total training loss and every loss term (``train/*`` but top-1)."""
    losses = sorted(t for t in set(tags) if t.startswith("train/") and t != "train/top1")
    losses.sort(key=lambda t: t != "train/loss")
    return (["test/top1"] if "test/top1" in tags else []) + losses


def _teacher_name(cfg: Dict) -> Optional[str]:
    """A student's teacher: its architecture and the first 8 digits of the SHA-256 its run recorded."""
    if not cfg.get("path_t"):
        return None
    sha = ((cfg.get("identity") or {}).get("inputs") or {}).get("path_t")
    return f"{cfg.get('model_t') or '?'} {sha[:8]}" if isinstance(sha, str) else str(cfg["path_t"])


def run_labels(run_dirs: Sequence[PathLike]) -> List[str]:
    """Legend labels of run folders from their config.yaml: ``<arch> <method> trial <n>`` (`training_method`),
    with ``, teacher <arch> <sha8>`` when the students have several teachers; a folder without a config is
    named by itself, and labels that are still alike get their folder names."""
    configs = [read_dict(Path(d) / "config.yaml") for d in run_dirs]
    several = len({_teacher_name(c) for c in configs} - {None}) > 1
    labels = []
    for folder, cfg in zip(run_dirs, configs):
        if not cfg:
            labels.append(Path(folder).name)
            continue
        text = " ".join(str(t) for t in (cfg.get("arch"), training_method({"config": cfg})) if t)
        text += f" trial {cfg.get('trial', 0)}"
        labels.append(text + (f", teacher {_teacher_name(cfg)}" if several and _teacher_name(cfg) else ""))
    return [f"{text} ({Path(d).name})" if labels.count(text) > 1 else text for text, d in zip(labels, run_dirs)]


def curves(run_dirs: Sequence[PathLike], out: PathLike = "curves.png", labels: Optional[Sequence[str]] = None,
           dpi: int = DPI) -> Path:
    """Test top-1 and every training loss term per epoch, one panel per quantity, one colour per run in every
    panel (labels: `run_labels`); a run without usable logs is skipped with a warning naming it."""
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise TopKDError("curves needs at least one run folder")
    labels = list(labels) if labels else run_labels(run_dirs)
    if len(labels) != len(run_dirs):
        raise TopKDError(f"{len(labels)} labels for {len(run_dirs)} run folders; give one label per run")
    runs = []  # (label, scalars) of the usable runs
    for folder, label in zip(run_dirs, labels):
        try:
            scalars = read_scalars(folder)
        except FileNotFoundError as exc:
            log.warning(f"curves: skipped {folder}: {exc}")
            continue
        if not curve_tags(list(scalars)):
            log.warning(f"curves: skipped {folder}: its logs hold no test/top1 or train/* scalars")
            continue
        runs.append((label, scalars))
    if not runs:
        raise TopKDError(f"no usable run among {', '.join(map(str, run_dirs))}: none has test/top1 or train/* "
                         f"scalars in its TensorBoard logs")
    tags = curve_tags([t for _, scalars in runs for t in scalars])
    ncols = min(CURVE_COLUMNS, len(tags))
    nrows = -(-len(tags) // ncols)
    fig = Figure(figsize=(ncols * CURVE_PANEL_INCHES[0], nrows * CURVE_PANEL_INCHES[1]), dpi=dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, tag in zip(axes, tags):
        for (label, scalars), colour in zip(runs, colours):
            if tag in scalars:
                ax.plot(*scalars[tag], marker="." if len(scalars[tag][0]) < 30 else None, label=label, color=colour)
        ax.legend(fontsize=6)
        ax.set_title("test top-1 (%)" if tag == "test/top1" else tag, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(tags):]:
        ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, out)


# ------------------------------------------------------------------------------------------------
# figure 4: teacher vs student persistence diagrams
# ------------------------------------------------------------------------------------------------
DIAGRAM_PANEL_INCHES = 3.5
DIAGRAM_COLUMNS = 5
TITLE_INCHES = 0.8  # titles are fitted to this share of their panel's (or the figure's) width
_DIM_MARKERS = {0: "o", 1: "^"}


def fit_text(text: str, inches: float, fontsize: float) -> str:
    """``text`` with line breaks so that no line is wider than ``inches`` at ``fontsize`` points (measured with
    matplotlib's default font): each break goes after the last ``_``, ``-``, ``/``, ``,`` or space that fits,
    else inside a word (run-folder names have no spaces)."""
    prop, measure = FontProperties(size=fontsize), TextToPath()
    limit = inches * 72.0  # points

    def width(line: str) -> float:
        return measure.get_text_width_height_descent(line, prop, ismath=False)[0]

    out: List[str] = []
    for line in text.split("\n"):
        current = ""
        for piece in re.split(r"(?<=[_\-/, ])", line):
            while piece:
                if width(current + piece) <= limit:
                    current, piece = current + piece, ""
                elif current:
                    out.append(current.rstrip())
                    current = ""
                else:  # one piece wider than the line: as many characters as fit
                    cut = next(k for k in range(len(piece), 0, -1) if k == 1 or width(piece[:k]) <= limit)
                    out.append(piece[:cut])
                    piece = piece[cut:]
        out.append(current.rstrip())
    return "\n".join(out)


def _label(path: PathLike, ckpt: Dict) -> str:
    how = training_method(ckpt)
    return f"{Path(path).parent.name}" + (f" ({how})" if how else "")


def diagrams(teacher: PathLike, students: Sequence[PathLike], out: PathLike = "diagrams.png",
             labels: Optional[Sequence[str]] = None, dataset: Optional[str] = None, data_root: str = "./data",
             image_size: Optional[int] = None, batch_size: int = 64, dims: Sequence[int] = (0, 1),
             dpi: int = DPI) -> Path:
    """The teacher's and each student's persistence diagrams (H0 circles, H1 triangles) of the first batch of the
    topology measurement (`engine.topo_eval.probe_indices`), eval mode, each cloud divided by its diameter; one
    panel per student titled with the bottleneck and 1-Wasserstein distances per dimension."""
    students = list(students)
    if not students:
        raise TopKDError("diagrams needs at least one student checkpoint (--students)")
    if labels is not None and len(labels) != len(students):
        raise TopKDError(f"{len(labels)} labels for {len(students)} students; give one label per student")
    dims = tuple(int(d) for d in dims)
    model_t, ckpt_t, first_s, ckpt_first, data = load_networks(teacher, students[0], dataset, data_root, image_size)
    batch = probe_indices(len(data.test), 1, batch_size)[0]
    images = torch.stack([data.test[i][0] for i in batch])
    f_t = embed_layer(model_t, images, -1)
    dg_t = metrics.cloud_diagrams(f_t / metrics.normalization_scale(f_t), dims)
    ncols = min(DIAGRAM_COLUMNS, len(students))
    nrows = -(-len(students) // ncols)
    fig = Figure(figsize=(ncols * DIAGRAM_PANEL_INCHES, nrows * DIAGRAM_PANEL_INCHES), dpi=dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, (ax, path) in enumerate(zip(axes, students)):
        if i == 0:
            model_s, ckpt_s = first_s, ckpt_first
        else:
            model_s, arch_s, ckpt_s = load_model(str(path))
            ckpt_s = dict(ckpt_s, arch=arch_s)
        f_s = embed_layer(model_s, images, -1)
        dg_s = metrics.cloud_diagrams(f_s / metrics.normalization_scale(f_s), dims)
        top = max([1e-9] + [float(g[:, 1].max()) for g in (*dg_t.values(), *dg_s.values()) if len(g)])
        ax.plot([0, top], [0, top], color="0.6", lw=0.8)
        scores = []
        for k in dims:
            for who, dg, colour in (("teacher", dg_t[k], "C0"), ("student", dg_s[k], "C1")):
                ax.scatter(dg[:, 0], dg[:, 1], s=12, marker=_DIM_MARKERS[k], facecolors="none" if who == "teacher"
                           else colour, edgecolors=colour, linewidths=0.8, label=f"{who} H{k}", alpha=0.8)
            scores.append(f"H{k}: bottleneck {metrics.bottleneck(dg_t[k], dg_s[k]):.3f}, "
                          f"W1 {metrics.wasserstein1(dg_t[k], dg_s[k]):.3f}")
        name = labels[i] if labels else _label(path, ckpt_s)
        ax.set_title(fit_text(f"{name}\n" + "\n".join(scores), TITLE_INCHES * DIAGRAM_PANEL_INCHES, 7), fontsize=7)
        ax.set_xlabel("birth / diameter", fontsize=7)
        ax.set_ylabel("death / diameter", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower right")
    for ax in axes[len(students):]:
        ax.set_visible(False)
    fig.suptitle(fit_text(f"teacher {ckpt_t.get('arch') or '?'} vs students: one test batch of {len(batch)} images "
                          f"(eval mode, each cloud / its diameter)", TITLE_INCHES * ncols * DIAGRAM_PANEL_INCHES, 8),
                 fontsize=8)
    return _save(fig, out)


# ------------------------------------------------------------------------------------------------
# figure 5: the rank-one H0 persistence image
# ------------------------------------------------------------------------------------------------
RANK_PANEL_INCHES = (3.0, 2.6)


def h0_factors(diagram: np.ndarray, params: PIParams) -> Tuple[np.ndarray, np.ndarray]:
    """The two factors of an H0 persistence image, from its diagram ``[k, 2]`` (births all 0): (birth profile
    ``[R0]`` = ``exp(-x^2 / 2s^2)`` on the birth grid, death profile ``[R1]`` = ``sum_k w(0, p_k) exp(-(p_k - y)^2 /
    2s^2) / (2 pi s^2 normalizer)`` on the persistence grid: the weighted, smoothed histogram of the MST edge
    lengths p_k). ``outer(death, birth)`` is the ``[R1, R0]`` image (rows persistence), normalized."""
    rows = finite_rows(diagram)
    if rows[:, 0].any():
        raise TopKDError("h0_factors needs an H0 Rips diagram: some births are not 0")
    pers = rows[:, 1]
    grid_x, grid_y = params.grids()
    s2 = 2.0 * params.bandwidth ** 2
    weights = get_weight(params.weight)(np.zeros_like(pers), pers, np)
    death = (weights[:, None] * np.exp(-((pers[:, None] - grid_y) ** 2) / s2)).sum(0)
    return np.exp(-(grid_x ** 2) / s2), death / (math.pi * s2 * params.normalizer)


def stage2_cloud(folder: PathLike, manifest: Dict[str, Any], dim: int,
                 index: int) -> Tuple[np.ndarray, np.ndarray, PIParams]:
    """Cloud ``index`` of a stage-2 folder whose files were verified against ``manifest`` (`open_verified`): (its
    ``[R1, R0]`` persistence image as stored, its ``[k, 2]`` diagram, the images' parameters) in dimension ``dim``."""
    entry = pi_entry(manifest, dim)
    params = PIParams.from_dict(dict(entry["params"]))
    images = np.load(Path(folder) / entry["file"], mmap_mode="r")
    if not 0 <= index < len(images):
        raise TopKDError(f"--cloud {index} is out of range: {folder} holds {len(images)} clouds (0-{len(images) - 1})")
    rec = next(r for r in manifest["shards"] if r["start"] <= index < r["start"] + r["clouds"])
    name = rec["diagrams"].get(dim) or rec["diagrams"].get(str(dim))
    diagram = load_diagrams(os.path.join(folder, name))[index - rec["start"]]
    image = np.asarray(images[index], dtype=np.float64).reshape(params.resolution[1], params.resolution[0])
    return image, diagram, params


def rank_one(stage2: PathLike, out: PathLike = "rank_one.png", cloud: int = 0, dpi: int = DPI) -> Path:
    """One cloud of a stage-2 folder, one row per homology dimension it holds: the persistence image, its birth
    and death factors and its singular values. H0: the factors of `h0_factors`, titled with their largest
    difference from the stored image; H1: the leading singular pair, titled with what it leaves out."""
    folder = Path(stage2)
    folder = folder.parent if folder.is_file() else folder
    dims = sorted(int(d) for d in (read_manifest(os.fspath(folder)).get("pi") or {}))
    if not dims:
        raise TopKDError(f"{folder} holds no persistence images yet; finish it with generate_PCD_PI.py")
    manifest = open_verified(os.fspath(folder), dims)  # every file's size and SHA-256 against the sealed record
    fig = Figure(figsize=(4 * RANK_PANEL_INCHES[0], len(dims) * RANK_PANEL_INCHES[1]), dpi=dpi,
                 layout="constrained")
    axes = fig.subplots(len(dims), 4, squeeze=False)
    for row, dim in zip(axes, dims):
        image, diagram, params = stage2_cloud(folder, manifest, dim, cloud)
        grid_y = params.grids()[1]
        sing = np.linalg.svd(image, compute_uv=False)
        if dim == 0:
            birth, death = h0_factors(diagram, params)
            gap = float(np.abs(np.outer(death, birth) - image).max())
            how = f"death x birth - image: max {gap:.1e}"
        else:
            u, s, vt = np.linalg.svd(image)
            sign = 1.0 if u[:, 0].sum() >= 0 else -1.0
            death, birth = sign * s[0] * u[:, 0], sign * vt[0]
            gap = float(np.abs(np.outer(death, birth) - image).max())
            how = f"leading singular pair; left out: max {gap:.1e}"
        ax = row[0]
        ax.imshow(image, origin="lower", aspect="auto", cmap="viridis")
        ax.set_title(f"H{dim} image of cloud {cloud} ({len(finite_rows(diagram))} points)", fontsize=8)
        ax.set_xlabel("birth column", fontsize=7)
        ax.set_ylabel("persistence row", fontsize=7)
        x0, x1 = params.im_range[:2]
        row[1].plot(birth, marker=".")
        row[1].set_title(f"{'birth profile' if dim == 0 else 'leading birth vector'} (births {x0:.3g} to {x1:.3g})",
                         fontsize=8)
        row[1].set_xlabel("birth column", fontsize=7)
        row[1].set_ylim(bottom=0.0)
        row[2].plot(grid_y, death, marker=".")
        pers = finite_rows(diagram) @ np.array([-1.0, 1.0])
        row[2].plot(pers, np.zeros_like(pers), "|", color="C3", ms=8, label="bars' persistences")
        row[2].set_title(f"{'death profile' if dim == 0 else 'leading persistence vector'}\n{how}", fontsize=8)
        row[2].set_xlabel("persistence (diagram units)", fontsize=7)
        row[2].legend(fontsize=6)
        if sing[0] > 0:  # plotted down to 1e-18 (exact zeros have no logarithm)
            row[3].semilogy(np.arange(1, len(sing) + 1), np.maximum(sing / sing[0], 1e-18), marker=".")
        row[3].set_title(f"singular values / largest (s2/s1 = {sing[1] / sing[0]:.1e})" if sing[0] > 0 else
                         "singular values: the image is zero", fontsize=8)
        row[3].set_xlabel("index", fontsize=7)
        for ax in row:
            ax.tick_params(labelsize=6)
    fig.suptitle(f"{folder}: {params.resolution[1]}x{params.resolution[0]} persistence images of one cloud",
                 fontsize=9)
    return _save(fig, out)


# ------------------------------------------------------------------------------------------------
# the quickstart's figures
# ------------------------------------------------------------------------------------------------
def _first(folder: Path, pattern: str) -> Optional[Path]:
    hits = sorted(folder.glob(pattern)) if folder.is_dir() else []
    return hits[0] if hits else None


def _method_runs(students: Path) -> Dict[str, Path]:
    """``students/<method>/`` (or ``students/<method>/<seed run>/``) -> ``{method: its first run folder}``: the
    folder itself when it holds a run, else its first sub-folder (sorted) that does."""
    out: Dict[str, Path] = {}
    if not students.is_dir():
        return out
    for method in sorted(d for d in students.iterdir() if d.is_dir()):
        runs = [method] if any(method.glob("*_best.pth")) else sorted(
            d for d in method.iterdir() if d.is_dir() and any(d.glob("*_best.pth")))
        if runs:
            out[method.name] = runs[0]
    return out


def quickstart_figures(out_dir: PathLike, embedding_method: str = "umap") -> List[Path]:
    """The four figures of a ``tools/quickstart.py`` folder (the KD_TopKD student for the two-network ones); a
    figure whose inputs are missing (or fail) is skipped with a note. -> the PNG paths written."""
    out = Path(out_dir)
    teacher = _first(out / "teacher", "*_best.pth")
    methods = _method_runs(out / "students")
    student_dir = methods.get("KD_TopKD") or next(iter(methods.values()), None)
    student = _first(student_dir, "*_best.pth") if student_dir is not None else None
    rips = _first(out / "ripsnet", "*_best.pth")
    manifest = out / "pcd" / "manifest.yaml"
    run_dirs = [p.parent for p in [teacher] if p is not None]
    run_dirs += list(methods.values())  # curves names the ones without usable logs
    student_ckpts = [_first(d, "*_best.pth") for d in methods.values()]
    jobs = {
        "pi_grid.png": ({"teacher": teacher, "student": student, "RipsNet": rips},
                        lambda path: pi_grid(teacher, student, rips, path,
                                             pi_params=manifest if manifest.is_file() else None)),
        "embedding.png": ({"teacher": teacher, "student": student},
                          lambda path: embedding(teacher, student, path, method=embedding_method)),
        "curves.png": ({"run logs": run_dirs or None}, lambda path: curves(run_dirs, path)),
        "diagrams.png": ({"teacher": teacher, "students": student_ckpts or None},
                         lambda path: diagrams(teacher, student_ckpts, path, labels=list(methods))),
    }
    written = []
    for name, (needs, make) in jobs.items():
        missing = [k for k, v in needs.items() if v is None]
        if missing:
            print(f"note: skipped {name}: no {', '.join(missing)} under {out}", flush=True)
            continue
        try:
            written.append(make(out / name))
        except (TopKDError, OSError) as exc:
            print(f"note: skipped {name}: {exc}", flush=True)
    return written


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """One sub-command per figure; its options are the keywords of the function that draws it (``make``)."""
    parser = argparse.ArgumentParser(description="Figures for TopKD runs (PNG).")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, make: Callable, text: str, *, pair: bool = True, data: bool = True,
                out: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text)
        p.set_defaults(make=make)
        if pair:
            p.add_argument("--teacher", required=True, help="teacher checkpoint")
        if data:
            p.add_argument("--dataset", default=None, help="data set (default: the teacher checkpoint's)")
            p.add_argument("--data_root", default="./data")
            p.add_argument("--image_size", type=int, default=None, help="image side (default: the teacher's)")
        if out:
            p.add_argument("--out", default=f"{name.replace('-', '_')}.png")
            p.add_argument("--dpi", type=int, default=DPI)
        return p

    p = command("pi-grid", pi_grid, "exact vs RipsNet persistence images, teacher and student")
    p.add_argument("--student", required=True, help="student checkpoint")
    p.add_argument("--ripsnet", required=True, help="RipsNet checkpoint (stage 3)")
    p.add_argument("--pi_params", default=None, help="stage-2 manifest.yaml or its folder (default: the RipsNet's)")
    p.add_argument("--rows", type=int, default=3, help="test batches shown")
    p.add_argument("--batch_size", type=int, default=64, help="points per cloud")
    p.add_argument("--teacher_bn", default=None, choices=("batch", "eval"),
                   help="teacher BatchNorm while embedding: batch statistics (the official stage 2) or stored ones "
                        "(default: the stage-2 manifest's --teacher_bn, else batch)")
    p = command("embedding", embedding, "2-D maps of the teacher and student embeddings")
    p.add_argument("--student", required=True, help="student checkpoint")
    p.add_argument("--max_points", type=int, default=2000)
    p.add_argument("--method", default="umap", choices=tuple(REDUCERS), help="UMAP (the paper's) or t-SNE")
    p.add_argument("--seed", type=int, default=0)
    p = command("curves", curves, "test top-1 and loss terms per epoch from tb/ logs", pair=False, data=False)
    p.add_argument("run_dirs", nargs="+", help="run folders (holding tb/)")
    p.add_argument("--labels", nargs="+", default=None)
    p = command("diagrams", diagrams, "teacher vs student persistence diagrams of one test batch, per student")
    p.add_argument("--students", required=True, nargs="+", help="student checkpoints (one per method)")
    p.add_argument("--labels", nargs="+", default=None, help="panel titles (default: run folder and method)")
    p.add_argument("--batch_size", type=int, default=64, help="points per cloud")
    p.add_argument("--dims", type=int, nargs="+", default=[0, 1], choices=(0, 1))
    p = command("rank-one", rank_one, "one stage-2 cloud's persistence images, their factors and singular values",
                pair=False, data=False)
    p.add_argument("--stage2", required=True, help="stage-2 folder (generate_PCD_PI.py --out_dir) or its manifest.yaml")
    p.add_argument("--cloud", type=int, default=0, help="index of the cloud shown")
    p = command("quickstart", quickstart_figures, "all four figures of a tools/quickstart.py folder", pair=False,
                data=False, out=False)
    p.add_argument("out_dir")
    return parser


def main(argv: Optional[Sequence[str]] = None):
    args = vars(build_parser().parse_args(argv))
    make = args.pop("make")
    del args["command"]
    if args.get("out"):
        check_output_file(args["out"], "--out")
    result = make(**args)
    for path in result if isinstance(result, list) else [result]:
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    run_cli(main)
