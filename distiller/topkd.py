"""TopKD's topology term, attachable to any teacher -> student method.

``loss_tda = delta * MSE(PI(cloud_t), PI(proj(cloud_s)))`` where a cloud is the batch's features at one
layer (``[B, C]``; stage maps are global-average-pooled), the whole batch as one point cloud or split into
``clouds`` equal sub-batch clouds, and ``PI`` is either a frozen RipsNet (``method="topkd"``, the paper)
or the exact differentiable persistence image (``method="topkd_exact"``). ``dims`` (``--dim``) picks the
homology dimensions: 0 (the paper), 1, or both, whose images are then laid side by side (one RipsNet per
dimension, or the exact H0 and H1 images) so the MSE is the mean of the per-dimension MSEs. ``proj`` is a learnable linear
map (the official 1x1 convolution on pooled features) present only when the widths differ. Gradients flow
through the frozen RipsNet into the projector and the student; the teacher side is computed without them.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models.features import check_layer, layer_embedding
from models.loading import check_finite_weights
from pcd.manifest import check_ripsnet_pi, read_pi_params
from pcd.ripsnet_paths import POOLINGS, find_ripsnet
from topkd_io import file_sha256
from topology.persistence import h0_deaths_torch, h1_diagrams_torch
from topology.point_cloud_pi import PIParams, h0_images_torch, h1_images_torch
from topology.ripsnet import load_ripsnet

from .options import Option, str2bool
from .registry import register_addon
from .teacher_student import TeacherStudent

log = logging.getLogger(__name__)


def to_clouds(f: torch.Tensor, clouds: int) -> torch.Tensor:
    """``[B, D]`` -> ``[clouds, B // clouds, D]`` (the last ``B % clouds`` samples are left out)."""
    n = f.shape[0] // clouds
    if n < 2:
        raise ValueError(f"batch of {f.shape[0]} cannot be split into {clouds} point clouds of >= 2 points; "
                         f"lower --tda_clouds or raise --batch_size")
    return f[: n * clouds].reshape(clouds, n, f.shape[1])


def ripsnet_input_dim(ripsnet: nn.Module) -> int:
    """Input width of a RipsNet (``input_dim`` attribute, else its first linear layer's ``in_features``)."""
    dim = getattr(ripsnet, "input_dim", None)
    if dim is not None:
        return int(dim)
    for m in ripsnet.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    raise ValueError("cannot tell the RipsNet's input width: it has no input_dim and no linear layer")


class RipsNetPI(nn.Module):
    """``[K, N, D]`` clouds -> ``[K, R*R]`` approximate persistence images by a frozen RipsNet."""

    def __init__(self, ripsnet: nn.Module):
        super().__init__()
        self.ripsnet = ripsnet.eval()
        for p in self.ripsnet.parameters():
            p.requires_grad_(False)
        self.input_dim = ripsnet_input_dim(ripsnet)

    def train(self, mode: bool = True):
        super().train(mode)
        self.ripsnet.eval()  # frozen: no dropout / BN updates whatever the outer mode
        return self

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return self.ripsnet(clouds)


class _ExactPI(nn.Module):
    """Base of the exact image modules: ``params`` is a ``topology.point_cloud_pi.PIParams`` (the stage-2
    manifest's or the RipsNet checkpoint's); ``input_dim`` None says any point dimension is accepted."""

    def __init__(self, params):
        super().__init__()
        self.params = params
        self.input_dim = None


class ExactH0PI(_ExactPI):
    """``[K, N, D]`` clouds -> ``[K, R*R]`` exact H0 persistence images (differentiable in the points)."""

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return h0_images_torch(h0_deaths_torch(clouds), self.params).reshape(clouds.shape[0], -1)


class ExactH1PI(_ExactPI):
    """``[K, N, D]`` clouds -> ``[K, R*R]`` exact H1 persistence images (differentiable in the points): gudhi's
    persistence pairs give each point's birth and death edges, whose lengths are recomputed from the points."""

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        births, deaths, mask = h1_diagrams_torch(clouds)
        return h1_images_torch(births, deaths, mask, self.params).reshape(clouds.shape[0], -1)


class StackedPI(nn.Module):
    """Several image modules (one per homology dimension) side by side: ``[K, N, D]`` -> ``[K, sum of P]``."""

    def __init__(self, parts: Sequence[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        widths = {p.input_dim for p in parts if p.input_dim is not None}
        if len(widths) > 1:
            raise ValueError(f"the RipsNets of the homology dimensions take points of different widths {sorted(widths)}; "
                             f"use RipsNets trained on the same teacher layer")
        self.input_dim = widths.pop() if widths else None

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(clouds) for p in self.parts], dim=-1)


# homology dimension -> exact image module
EXACT_PI = {0: ExactH0PI, 1: ExactH1PI}


def check_dims(dims) -> Tuple[int, ...]:
    """``--dim`` value(s) -> a tuple of distinct homology dimensions among 0 and 1 (ValueError otherwise)."""
    dims = tuple(int(d) for d in (dims if isinstance(dims, (list, tuple)) else [dims]))
    if not dims or any(d not in EXACT_PI for d in dims) or len(set(dims)) != len(dims):
        raise ValueError(f"--dim {' '.join(map(str, dims))}: pick homology dimensions among 0 and 1 "
                         f"(--dim 0, --dim 1 or --dim 0 1)")
    return dims


def _by_dim(value, dims: Sequence[int], what: str) -> Dict[int, object]:
    """One object (for a single dimension) or ``{dim: object}`` -> ``{dim: object}`` covering ``dims``."""
    if isinstance(value, dict):
        missing = [d for d in dims if value.get(d) is None]
        if missing:
            raise ValueError(f"no {what} for homology dimension {', '.join(map(str, missing))}")
        return {d: value[d] for d in dims}
    if len(dims) != 1:
        raise ValueError(f"--dim {' '.join(map(str, dims))} needs one {what} per dimension")
    return {dims[0]: value}


class TopologyTerm(nn.Module):
    """``delta * MSE(images(cloud_t), images(proj(cloud_s)))`` from the two networks' feature lists.

    ``layer_s``/``layer_t`` index ``feats`` (already validated, non-negative); ``dim_s``/``dim_t`` their
    channel widths; ``images`` maps ``[K, N, D]`` -> ``[K, P]``.
    """

    def __init__(self, images: nn.Module, delta: float, layer_s: int, layer_t: int, dim_s: int, dim_t: int,
                 clouds: int = 1):
        super().__init__()
        if clouds < 1:
            raise ValueError(f"--tda_clouds must be >= 1, got {clouds}")
        self.images, self.delta, self.clouds = images, float(delta), int(clouds)
        self.layer_s, self.layer_t = layer_s, layer_t
        self.proj = nn.Linear(dim_s, dim_t) if dim_s != dim_t else nn.Identity()

    def learnable_modules(self):
        """Only the projector trains; the image module (RipsNet) stays frozen."""
        return (self.proj,)

    def forward(self, feats_s: Sequence[torch.Tensor], feats_t: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device_type=feats_s[self.layer_s].device.type, enabled=False):
            clouds_t = to_clouds(layer_embedding(feats_t, self.layer_t).detach().float(), self.clouds)
            clouds_s = to_clouds(self.proj(layer_embedding(feats_s, self.layer_s).float()), self.clouds)
            # One call for teacher and student clouds (one RipsNet pass, one tree search): small GPU
            # workloads are launch-bound. The teacher's clouds are detached, so its images get no gradient.
            images = self.images(torch.cat([clouds_t, clouds_s]))
            pi_t, pi_s = images[: len(clouds_t)].detach(), images[len(clouds_t):]
            return self.delta * F.mse_loss(pi_s, pi_t)


def _stack(parts: Sequence[nn.Module]) -> nn.Module:
    return parts[0] if len(parts) == 1 else StackedPI(parts)


def _ripsnet_pi(rips=None, dims=(0,), **_) -> nn.Module:
    if rips is None or (isinstance(rips, dict) and not rips):
        raise ValueError("TopKD with a RipsNet needs --rips_path (the stage-3 RipsNet checkpoint), "
                         "or use --method topkd_exact, or set --delta 0")
    nets = _by_dim(rips, dims, "RipsNet")
    return _stack([RipsNetPI(nets[d]) for d in dims])


def _exact_pi(pi_params=None, dims=(0,), **_) -> nn.Module:
    if pi_params is None or (isinstance(pi_params, dict) and not pi_params):
        raise ValueError("--method topkd_exact needs persistence-image parameters: pass --pi_params "
                         "(the stage-2 folder or its manifest.yaml) or a --rips_path checkpoint that carries them")
    params = _by_dim(pi_params, dims, "persistence-image parameters (stage 2 with --dims covering them)")
    return _stack([EXACT_PI[d](params[d]) for d in dims])


# --method name -> builder of the persistence-image module
PI_METHODS: Dict[str, Callable[..., nn.Module]] = {"topkd": _ripsnet_pi, "topkd_exact": _exact_pi}


def attach_topology(distiller: TeacherStudent, delta: float, method: str = "topkd", rips: Optional[nn.Module] = None,
                    pi_params=None, tda_layer_t: int = -1, tda_layer_s: Optional[int] = None,
                    tda_clouds: int = 1, dims: Sequence[int] = (0,)) -> Optional[TopologyTerm]:
    """Add ``loss_tda`` to ``distiller`` (any :class:`TeacherStudent`); nothing when ``delta == 0``.

    rips: a loaded RipsNet module (``method="topkd"``), or ``{dim: RipsNet}`` for several ``dims``; pi_params:
    a PIParams (``"topkd_exact"``), or ``{dim: PIParams}``. dims: homology dimensions (0, 1 or both).
    ``tda_layer_s`` defaults to ``tda_layer_t``. Raises ValueError for out-of-range layers, a RipsNet
    whose input width differs from the teacher feature width, or missing inputs.
    """
    if not delta:
        return None
    if delta < 0:
        raise ValueError(f"--delta must be >= 0, got {delta}")
    if not isinstance(distiller, TeacherStudent):
        raise ValueError(f"the topology term needs a teacher -> student method, not {type(distiller).__name__}; "
                         f"use e.g. --distill kd")
    if method not in PI_METHODS:
        raise ValueError(f"unknown --method {method!r}; choose one of: {', '.join(PI_METHODS)}")
    dims = check_dims(dims)
    tda_layer_s = tda_layer_t if tda_layer_s is None else tda_layer_s
    layer_t = check_layer(tda_layer_t, len(distiller.feat_shapes_t), "--tda_layer_t", "teacher")
    layer_s = check_layer(tda_layer_s, len(distiller.feat_shapes_s), "--tda_layer_s", "student")
    dim_t = distiller.feat_shapes_t[layer_t][1]
    dim_s = distiller.feat_shapes_s[layer_s][1]
    images = PI_METHODS[method](rips=rips, pi_params=pi_params, dims=dims)
    if images.input_dim is not None and images.input_dim != dim_t:
        raise ValueError(f"the RipsNet takes {images.input_dim}-d points but the teacher's feature at "
                         f"--tda_layer_t {tda_layer_t} is {dim_t}-d: use the RipsNet trained on this teacher/layer")
    term = TopologyTerm(images, delta, layer_s, layer_t, dim_s, dim_t, tda_clouds)
    p = next(distiller.student.parameters(), None)
    if p is not None:
        term.to(p.device)
    distiller.add_term("loss_tda", term)
    return term


# --------------------------------------------------------------------------------------------------
# the command-line add-on: options declared once, composing with every teacher -> student method
# --------------------------------------------------------------------------------------------------
def locate_ripsnet(cfg: argparse.Namespace, dim: Optional[int] = None) -> str:
    """The RipsNet checkpoint the flags name -> an existing file (`pcd.ripsnet_paths.find_ripsnet`).

    ``--rips_path`` may be a file, a folder holding ``<operator>_best.pth``, or a root searched by the official
    rule ``<root>/<dataset>_<teacher>_batch<bs>_FCinput_PCD_dim<k>/<operator>_best.pth`` and by our stage-3
    layout; left out, the root is the official ``ripsnet/result``. Of those found, the one trained on the stage-2
    data of this ``--path_t`` is preferred. Without ``--operator`` both poolings are tried. ``dim``: the homology
    dimension (default: ``cfg.dim``).
    """
    dim = cfg.dim if dim is None else dim
    if cfg.rips_path and os.path.isfile(cfg.rips_path):
        return cfg.rips_path
    teacher_sha = file_sha256(cfg.path_t) if cfg.path_t and os.path.isfile(cfg.path_t) else None
    return find_ripsnet(cfg.rips_path, cfg.dataset, cfg.model_t, cfg.batch_size, cfg.tda_layer_t, dim, cfg.operator,
                        teacher_sha=teacher_sha)


def _recorded_dim(ckpt: dict) -> Optional[int]:
    """The homology dimension a RipsNet checkpoint says it was trained on (None for official files)."""
    if ckpt.get("dim") is not None:
        return int(ckpt["dim"])
    params = ckpt.get("pi_params") or {}
    return None if params.get("homology_dim") is None else int(params["homology_dim"])


def load_topology_inputs(cfg: argparse.Namespace, dims: Sequence[int] = (0,)):
    """-> ``({dim: ripsnet} or None, {dim: PIParams} or None)`` as ``--rips_path`` / ``--operator`` /
    ``--units_list`` / ``--pi_params`` ask, one per homology dimension in ``dims`` (``topkd_exact`` without
    ``--rips_path`` reads only ``--pi_params``). Several dimensions need one RipsNet each, found under a
    ``--rips_path`` folder or root by the naming rules; a RipsNet recording another dimension is refused."""
    rips, params = None, None
    if cfg.method == "topkd" or cfg.rips_path:
        if len(dims) > 1 and cfg.rips_path and os.path.isfile(cfg.rips_path):
            raise ValueError(f"--dim {' '.join(map(str, dims))} needs one RipsNet per dimension: pass --rips_path as "
                             f"the root holding them (found by the naming rule ..._dim<k>/), not the file {cfg.rips_path}")
        rips, params, seen = {}, {}, {}
        for dim in dims:
            path = (getattr(cfg, "rips_files", None) or {}).get(dim) or locate_ripsnet(cfg, dim)
            if path in seen:
                raise ValueError(f"--rips_path: {path} was found for --dim {seen[path]} and --dim {dim}; pass a root "
                                 f"holding one RipsNet per dimension (..._dim0/, ..._dim1/)")
            seen[path] = dim
            net, ckpt = load_ripsnet(path, operator=cfg.operator, units_list=cfg.units_list)
            check_ripsnet_pi(ckpt, path)  # its PI parameters agree with its output and its recorded manifest
            check_finite_weights(net.state_dict(), path, "--rips_path")
            recorded = _recorded_dim(ckpt)
            if recorded is not None and recorded != dim:
                raise ValueError(f"the RipsNet {path} was trained on H{recorded} images but --dim asks for H{dim}; "
                                 f"pass the RipsNet of train_ripsnet.py --dim {dim}")
            rips[dim] = net
            if ckpt["pi_params"] is not None:  # None in official checkpoints
                params[dim] = PIParams.from_dict(ckpt["pi_params"])
            how = ckpt.get("resolved") or {}
            log.info(f"topology term: H{dim} RipsNet {path} ({net.pooling} pooling from "
                     f"{how.get('pooling_from', 'checkpoint')}, widths {net.units} from "
                     f"{how.get('units_from', 'checkpoint')})")
    if cfg.pi_params:
        params = {dim: read_pi_params(cfg.pi_params, dim, verify=not getattr(cfg, "no_verify", False))
                  for dim in dims}
    return rips, (params or None)


class TopologyAddOn:
    """TopKD's ``loss_tda`` as a command-line add-on: ``-d > 0`` attaches it to any `TeacherStudent`."""

    name = "topology"
    options = (
        Option("delta", 0.0, "weight of the topology term (0 = off)", flags=("-d", "--delta"), source="TopKD",
               low=0.0),
        Option("method", "topkd", "persistence images by the frozen RipsNet (topkd) or exactly (topkd_exact)",
               choices=tuple(PI_METHODS)),
        Option("tda_layer_t", -1, "teacher feature index (-1 = FC input)", source="TopKD"),
        Option("tda_layer_s", None, "student feature index (default: --tda_layer_t)", type=int),
        Option("tda_clouds", 1, "point clouds per batch (1 = the whole batch)", source="TopKD", low=1),
        Option("dim", 0, "homology dimension(s) matched: 0, 1, or 0 1 (both images side by side)", type=int,
               nargs="+", source="TopKD", low=0, high=1),
        Option("operator", None, "RipsNet pooling; picks <operator>_best.pth (default: whichever one exists)",
               choices=POOLINGS, source="official TopKD default: sum"),
        Option("rips_path", None, "RipsNet checkpoint file, run folder or root (default: ripsnet/result, searched by "
               "the official rule <dataset>_<teacher>_batch<bs>_FCinput_PCD_dim<k>/<operator>_best.pth and by our "
               "stage-3 layout ripsnet/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>/; the one trained on this "
               "teacher's stage-2 data is preferred, another choice is logged)",
               source="official TopKD default: ripsnet/result", free=True),
        Option("units_list", None, "RipsNet widths [input, phi x3, rho x4]; checked against the loaded RipsNet "
               "(default: stored, else the official width table)", type=int, nargs="+",
               source="official TopKD default 64 30 20 10 50 100 200 400, which fits none of its released RipsNets"),
        Option("TDA", None, "official switch of the topology term: True = on (needs -d > 0), False = off "
               "whatever -d says (default: on exactly when -d > 0)", type=str2bool, flags=("--TDA",),
               metavar="True|False", source="official TopKD default: True"),
        Option("pi_params", None, "stage-2 folder (or its manifest.yaml) whose PI parameters topkd_exact uses",
               free=True),
    )

    def applies_to(self, method_cls) -> bool:
        return issubclass(method_cls, TeacherStudent) and method_cls.addons

    def input_files(self, cfg: argparse.Namespace, must_exist: bool = True) -> Dict[str, Optional[str]]:
        """Check the options (``--TDA False`` sets delta to 0) and find the term's input files ->
        ``{"rips_path": resolved RipsNet, "pi_params": ...}`` (only those the term reads; none when it is off).

        The RipsNets found (also by the official naming rule) are kept in ``cfg.rips_files`` (``{dim: path}``);
        with several ``--dim`` the inputs are ``rips_path_dim<k>``. ``must_exist=False`` (``--plan``): a RipsNet
        that cannot be found yet is returned as the path asked for (its hash is then pending)."""
        self.check_options(cfg)
        if not cfg.delta:
            return {}
        out: Dict[str, Optional[str]] = {}
        if cfg.method == "topkd" or cfg.rips_path:
            dims = check_dims(cfg.dim)
            cfg.rips_files = {}
            for dim in dims:
                try:
                    cfg.rips_files[dim] = locate_ripsnet(cfg, dim)
                except FileNotFoundError:
                    if must_exist:
                        raise
                key = "rips_path" if len(dims) == 1 else f"rips_path_dim{dim}"
                out[key] = cfg.rips_files.get(dim) or cfg.rips_path or "ripsnet/result (not found)"
        if cfg.pi_params:
            out["pi_params"] = cfg.pi_params
        return out

    def check_options(self, cfg: argparse.Namespace) -> None:
        """The term's option rules (idempotent: a second call changes nothing and prints nothing)."""
        if cfg.TDA is False and cfg.delta:
            log.info(f"note: --TDA False: the topology term is off (-d {cfg.delta} ignored, as in the official code)")
            cfg.delta = 0.0
        if cfg.TDA is True and not cfg.delta:
            raise ValueError("--TDA True needs the weight of the topology term: pass -d/--delta > 0 (e.g. -d 5)")
        dims = check_dims(cfg.dim)
        cfg.dim = dims[0] if len(dims) == 1 else list(dims)  # one value stays a number, as the official flag
        if cfg.delta < 0:
            raise ValueError(f"--delta must be >= 0, got {cfg.delta}")
        if cfg.delta and cfg.method == "topkd_exact" and not (cfg.pi_params or cfg.rips_path):
            raise ValueError("--method topkd_exact needs --pi_params (the stage-2 folder or its manifest.yaml) or a "
                             "--rips_path checkpoint that carries them")

    def attach(self, cfg: argparse.Namespace, distiller: TeacherStudent) -> None:
        """Check the options and add the term when ``cfg.delta > 0`` (``--TDA False`` sets delta to 0)."""
        self.check_options(cfg)
        if not cfg.delta:
            return
        dims = check_dims(cfg.dim)
        rips, params = load_topology_inputs(cfg, dims)
        attach_topology(distiller, cfg.delta, method=cfg.method, rips=rips, pi_params=params,
                        tda_layer_t=cfg.tda_layer_t, tda_layer_s=cfg.tda_layer_s, tda_clouds=cfg.tda_clouds, dims=dims)

    def unused_options(self, cfg: argparse.Namespace) -> Tuple[str, ...]:
        """Options that do not change the result: ``--TDA`` (folded into ``-d``) and ``--units_list`` (only
        checked against the RipsNet, whose SHA-256 is in the identity); with the term off (``-d 0``) every
        option but ``-d``."""
        if not cfg.delta:
            return tuple(o.name for o in self.options if o.name != "delta")
        return ("TDA", "units_list")

    def run_tag(self, cfg: argparse.Namespace) -> Tuple[str, str]:
        """``("+topkd", "d-5.0")`` when the term is on, ``("", "d-0.0")`` when off."""
        return (f"+{cfg.method}" if cfg.delta else ""), f"d-{float(cfg.delta)}"


register_addon(TopologyAddOn())
