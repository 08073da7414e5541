"""Where a teacher's RipsNet lives: the official TopKD naming rule (``train_student.py`` of jekim5418/TopKD,
``<root>/<dataset>_<teacher>_batch<bs>_<tag>_PCD_dim<k>/<operator>_best.pth``, root ``ripsnet/result``, the tag
from ``--tda_layer_t``: `OFFICIAL_LAYER_TAGS`) and our stage-3 layout
(``<root>/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>[_<pooling>-<identity hash>]/<pooling>_best.pth``, root
``ripsnet``). `find_ripsnet` prefers the one trained on this teacher's own stage-2 data."""
import glob
import logging
import os
from typing import List, Optional, Union

from topkd_io import TopKDError, load_checkpoint
from topology.ripsnet import POOLINGS as POOLING_FUNCTIONS

log = logging.getLogger(__name__)

OFFICIAL_ROOT = os.path.join("ripsnet", "result")
OURS_ROOT = "ripsnet"
POOLINGS = tuple(POOLING_FUNCTIONS)  # the RipsNet poolings (--operator): mean, sum
# --tda_layer_t -> the official folder tag (its train_student.py); -1 is the FC input (the paper's setting).
OFFICIAL_LAYER_TAGS = {-1: "FCinput", 0: "output", -5: "layer1input", -4: "layer2input", -3: "layer3input"}

Layer = Union[int, str]


def official_layer_tag(layer: Layer) -> str:
    """``-1`` -> ``FCinput`` (see OFFICIAL_LAYER_TAGS); a tag given as text (``FCinput``) is kept."""
    if isinstance(layer, str) and not layer.lstrip("-").isdigit():
        if layer not in OFFICIAL_LAYER_TAGS.values():
            raise TopKDError(f"unknown official RipsNet layer tag {layer!r}; one of "
                             f"{', '.join(OFFICIAL_LAYER_TAGS.values())}")
        return layer
    if int(layer) not in OFFICIAL_LAYER_TAGS:
        raise TopKDError(f"the official RipsNet naming has no tag for --tda_layer_t {layer}; use one of "
                         f"{', '.join(map(str, sorted(OFFICIAL_LAYER_TAGS)))} or pass the RipsNet file to --rips_path")
    return OFFICIAL_LAYER_TAGS[int(layer)]


def official_ripsnet_path(dataset: str, teacher: str, batch_size: int, layer: Layer = -1, dim: Union[int, str] = 0,
                          operator: str = "mean", root: str = OFFICIAL_ROOT) -> str:
    """``<root>/<dataset>_<teacher>_batch<bs>_<FCinput|...>_PCD_dim<k>/<operator>_best.pth`` (the official rule)."""
    folder = f"{dataset}_{teacher}_batch{int(batch_size)}_{official_layer_tag(layer)}_PCD_dim{dim}"
    return os.path.join(root, folder, f"{operator}_best.pth")


def stage3_run_name(dataset: str, teacher: str, batch_size: Union[int, str], layer: Layer, dim: Union[int, str]) -> str:
    """Our stage-3 run folder name ``<dataset>_<teacher>_batch<bs>_<layer>_dim<k>``."""
    return f"{dataset}_{teacher}_batch{batch_size}_{layer}_dim{dim}"


def stage3_ripsnet_path(dataset: str, teacher: str, batch_size: int, layer: Layer = -1, dim: Union[int, str] = 0,
                        pooling: str = "mean", root: str = OURS_ROOT) -> str:
    """``<root>/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>/<pooling>_best.pth`` (our train_ripsnet.py layout)."""
    return os.path.join(root, stage3_run_name(dataset, teacher, batch_size, layer, dim), f"{pooling}_best.pth")


def recorded_teacher_sha(path: str) -> Optional[str]:
    """The teacher SHA-256 recorded in a RipsNet checkpoint's stage-2 manifest, or None."""
    try:
        manifest = load_checkpoint(path).get("manifest") or {}
    except (ValueError, OSError):
        return None
    teacher = ((manifest.get("config") or {}).get("source") or {}).get("teacher") or {}
    return teacher.get("sha256") if isinstance(teacher, dict) else None


def ripsnet_candidates(root: str, dataset: str, teacher: str, batch_size: int, layer: Layer = -1,
                       dim: Union[int, str] = 0, operator: str = "mean") -> List[str]:
    """Paths a RipsNet for these settings may have under ``root``, in the order they are tried: the official
    rule, then our layout and train_ripsnet.py's run folders ``<stage-3 name>_<pooling>-<hash>``; for a root named
    ``result`` (the official ``ripsnet/result``) also those under its parent (``ripsnet``)."""
    out = []
    try:
        out.append(official_ripsnet_path(dataset, teacher, batch_size, layer, dim, operator, root))
    except ValueError:
        pass  # a layer the official naming has no tag for: only our layout applies
    roots = [root]
    if os.path.basename(os.path.normpath(root)) == "result":
        roots.append(os.path.dirname(os.path.normpath(root)) or ".")
    name = stage3_run_name(dataset, teacher, batch_size, layer, dim) + f"_{operator}-"
    for r in roots:
        out.append(stage3_ripsnet_path(dataset, teacher, batch_size, layer, dim, operator, r))
        out += sorted(glob.glob(os.path.join(glob.escape(r), glob.escape(name) + "*", f"{operator}_best.pth")))
    return out


def _one_pooling(found: List[str]) -> str:
    """The one RipsNet of ``found`` (one per pooling); two -> the error asking for ``--operator``."""
    if len(found) > 1:
        raise FileNotFoundError(f"--rips_path: found {' and '.join(found)}; pass --operator mean or sum to pick one")
    return found[0]


def find_ripsnet(rips_path: Optional[str], dataset: str, teacher: str, batch_size: int, layer: Layer = -1,
                 dim: Union[int, str] = 0, operator: Optional[str] = "mean", teacher_sha: Optional[str] = None) -> str:
    """The RipsNet checkpoint for ``--rips_path`` (a file, a run folder holding ``<operator>_best.pth``, or a root
    searched with `ripsnet_candidates`; None: ``ripsnet/result``) -> an existing file. Under a root: the one
    trained on this teacher's stage-2 data (manifest records ``teacher_sha``), else the first that records no
    teacher (official, or trained on ``--pcd`` clouds; logged, naming those passed over), never one of another
    teacher's data. ``operator`` None: either pooling (both found: the error asks for ``--operator``)."""
    poolings = [operator] if operator else list(POOLINGS)
    root = OFFICIAL_ROOT if rips_path is None else os.fspath(rips_path)
    if os.path.isfile(root):
        return root
    tried = [os.path.join(root, f"{op}_best.pth") for op in poolings] if os.path.isdir(root) else []
    direct = [p for p in tried if os.path.isfile(p)]
    if direct:
        return _one_pooling(direct)
    tried += [p for op in poolings for p in ripsnet_candidates(root, dataset, teacher, batch_size, layer, dim, op)]
    made_from = {p: recorded_teacher_sha(p) for p in tried if os.path.isfile(p)}  # None: records no teacher
    own = [p for p, sha in made_from.items() if teacher_sha and sha == teacher_sha]
    if len(own) > 1:
        raise TopKDError(f"several RipsNets trained on the stage-2 data of this teacher {teacher}: "
                         f"{', '.join(own)}; pass the one you mean to --rips_path")
    if own:
        return own[0]
    usable = [p for p, sha in made_from.items() if sha is None or not teacher_sha]
    foreign = [f"{p} (trained on another teacher's stage-2 data, sha256 {sha[:8]})" for p, sha in made_from.items()
               if p not in usable]
    if not usable:
        raise FileNotFoundError(f"no RipsNet for teacher {teacher} on {dataset} (batch {batch_size}, layer {layer}, "
                                f"dim {dim}, {'/'.join(poolings)} pooling); " +
                                (f"found only {', '.join(foreign)}: pass one to --rips_path to use it anyway"
                                 if foreign else f"tried {', '.join(tried)}; train one with train_ripsnet.py or pass "
                                 f"the checkpoint to --rips_path"))
    first = {}
    for p in usable:
        first.setdefault(os.path.basename(p), p)  # the first of each pooling
    chosen = _one_pooling(list(first.values()))
    passed = foreign + [f"{p} (later in the search order)" for p in usable if p != chosen]
    why = (f"no RipsNet trained on this teacher's stage-2 data (teacher sha256 {teacher_sha[:8]}) was found, and "
           f"this one records no teacher (an official RipsNet, or one trained on --pcd clouds)" if teacher_sha else
           "the teacher file is not known, so no RipsNet can be told to be trained on its data; this one is the "
           "first found")
    log.info(f"RipsNet: took {chosen}: {why}" + (f"; passed over: {', '.join(passed)}" if passed else ""))
    return chosen
