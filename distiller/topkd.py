"""TopKD's topology term, attachable to any teacher -> student method.

``loss_tda = delta * MSE(PI(cloud_t), PI(proj(cloud_s)))`` where a cloud is the batch's features at one
layer (``[B, C]``; stage maps are global-average-pooled), the whole batch as one point cloud or split into
``clouds`` equal sub-batch clouds, and ``PI`` is either a frozen RipsNet (``method="topkd"``, the paper)
or the exact differentiable H0 persistence image (``method="topkd_exact"``). ``proj`` is a learnable linear
map (the official 1x1 convolution on pooled features) present only when the widths differ. Gradients flow
through the frozen RipsNet into the projector and the student; the teacher side is computed without them.
"""
from __future__ import annotations

import argparse
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models.features import check_layer, layer_embedding

from .options import Option, str2bool
from .registry import register_addon
from .teacher_student import TeacherStudent


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


class ExactH0PI(nn.Module):
    """``[K, N, D]`` clouds -> ``[K, R*R]`` exact H0 persistence images (differentiable in the points).

    ``params``: a ``topology.point_cloud_pi.PIParams`` (the stage-2 manifest's or the RipsNet checkpoint's).
    """

    def __init__(self, params):
        super().__init__()
        from topology.persistence import h0_deaths_torch
        from topology.point_cloud_pi import h0_images_torch

        self.params = params
        self._deaths, self._images = h0_deaths_torch, h0_images_torch
        self.input_dim = None

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return self._images(self._deaths(clouds), self.params).reshape(clouds.shape[0], -1)


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


def _ripsnet_pi(rips=None, **_) -> nn.Module:
    if rips is None:
        raise ValueError("TopKD with a RipsNet needs --rips_path (the stage-3 RipsNet checkpoint), "
                         "or use --method topkd_exact, or set --delta 0")
    return RipsNetPI(rips)


def _exact_pi(pi_params=None, **_) -> nn.Module:
    if pi_params is None:
        raise ValueError("--method topkd_exact needs persistence-image parameters: pass --pi_params "
                         "(the stage-2 folder or its manifest.yaml) or a --rips_path checkpoint that carries them")
    return ExactH0PI(pi_params)


# --method name -> builder of the persistence-image module
PI_METHODS: Dict[str, Callable[..., nn.Module]] = {"topkd": _ripsnet_pi, "topkd_exact": _exact_pi}


def attach_topology(distiller: TeacherStudent, delta: float, method: str = "topkd", rips: Optional[nn.Module] = None,
                    pi_params=None, tda_layer_t: int = -1, tda_layer_s: Optional[int] = None,
                    tda_clouds: int = 1) -> Optional[TopologyTerm]:
    """Add ``loss_tda`` to ``distiller`` (any :class:`TeacherStudent`); nothing when ``delta == 0``.

    rips: a loaded RipsNet module (``method="topkd"``); pi_params: a PIParams (``"topkd_exact"``).
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
    tda_layer_s = tda_layer_t if tda_layer_s is None else tda_layer_s
    layer_t = check_layer(tda_layer_t, len(distiller.feat_shapes_t), "--tda_layer_t", "teacher")
    layer_s = check_layer(tda_layer_s, len(distiller.feat_shapes_s), "--tda_layer_s", "student")
    dim_t = distiller.feat_shapes_t[layer_t][1]
    dim_s = distiller.feat_shapes_s[layer_s][1]
    images = PI_METHODS[method](rips=rips, pi_params=pi_params)
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
POOLINGS = ("mean", "sum")


def locate_ripsnet(cfg: argparse.Namespace) -> str:
    """The RipsNet checkpoint the flags name -> an existing file (`pcd.ripsnet_paths.find_ripsnet`).

    ``--rips_path`` may be a file, a folder holding ``<operator>_best.pth``, or a root searched by the official
    rule ``<root>/<dataset>_<teacher>_batch<bs>_FCinput_PCD_dim<k>/<operator>_best.pth`` and then our stage-3
    layout; left out, the root is the official ``ripsnet/result``. Without ``--operator`` both poolings are
    tried and exactly one must exist.
    """
    from pcd.ripsnet_paths import find_ripsnet

    if cfg.rips_path and os.path.isfile(cfg.rips_path):
        return cfg.rips_path
    found, missing = [], []
    for op in ([cfg.operator] if cfg.operator else POOLINGS):
        try:
            found.append(find_ripsnet(cfg.rips_path, cfg.dataset, cfg.model_t, cfg.batch_size, cfg.tda_layer_t,
                                      cfg.dim, op))
        except FileNotFoundError as exc:
            missing.append(str(exc))
    if len(found) > 1:
        raise FileNotFoundError(f"--rips_path: found {' and '.join(found)}; pass --operator mean or sum to pick one")
    if not found:
        raise FileNotFoundError(missing[0] if len(missing) == 1 else
                                missing[0] + " (and the same with sum pooling); or pass --operator")
    return found[0]


def load_topology_inputs(cfg: argparse.Namespace):
    """-> ``(ripsnet or None, PIParams or None)`` as ``--rips_path`` / ``--operator`` / ``--units_list`` /
    ``--pi_params`` ask (``topkd_exact`` without ``--rips_path`` reads only ``--pi_params``)."""
    from models.loading import check_finite_weights
    from pcd.manifest import check_ripsnet_pi, read_pi_params
    from topology.point_cloud_pi import PIParams

    rips, params = None, None
    if cfg.method == "topkd" or cfg.rips_path:
        from topology.ripsnet import load_ripsnet

        path = locate_ripsnet(cfg)
        rips, ckpt = load_ripsnet(path, operator=cfg.operator, units_list=cfg.units_list)
        check_ripsnet_pi(ckpt, path)  # its PI parameters agree with its output and its recorded manifest
        check_finite_weights(rips.state_dict(), path, "--rips_path")
        params = ckpt["pi_params"]  # None in official checkpoints
        how = ckpt.get("resolved") or {}
        print(f"topology term: RipsNet {path} ({rips.pooling} pooling from {how.get('pooling_from', 'checkpoint')}, "
              f"widths {rips.units} from {how.get('units_from', 'checkpoint')})", flush=True)
    if cfg.pi_params:
        params = read_pi_params(cfg.pi_params, cfg.dim, verify=not getattr(cfg, "no_verify", False))
    elif params is not None:
        params = PIParams.from_dict(params)
    return rips, params


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
        Option("dim", 0, "homology dimension matched (only 0 is supported)", source="TopKD"),
        Option("operator", None, "RipsNet pooling; picks <operator>_best.pth (default: whichever one exists)",
               choices=POOLINGS, source="official TopKD default: sum"),
        Option("rips_path", None, "RipsNet checkpoint file, run folder or root (default: ripsnet/result, searched by "
               "the official rule <dataset>_<teacher>_batch<bs>_FCinput_PCD_dim<k>/<operator>_best.pth, then by our "
               "stage-3 layout ripsnet/<dataset>_<teacher>_batch<bs>_<layer>_dim<k>/)",
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

    def attach(self, cfg: argparse.Namespace, distiller: TeacherStudent) -> None:
        """Check the options and add the term when ``cfg.delta > 0`` (``--TDA False`` sets delta to 0)."""
        if cfg.TDA is False and cfg.delta:
            print(f"note: --TDA False: the topology term is off (-d {cfg.delta} ignored, as in the official code)",
                  flush=True)
            cfg.delta = 0.0
        if cfg.TDA is True and not cfg.delta:
            raise ValueError("--TDA True needs the weight of the topology term: pass -d/--delta > 0 (e.g. -d 5)")
        if cfg.dim != 0:
            raise ValueError(f"--dim {cfg.dim}: only H0 (--dim 0) is supported, as in the paper's RipsNets")
        if cfg.delta < 0:
            raise ValueError(f"--delta must be >= 0, got {cfg.delta}")
        if not cfg.delta:
            return
        if cfg.method == "topkd_exact" and not (cfg.pi_params or cfg.rips_path):
            raise ValueError("--method topkd_exact needs --pi_params (the stage-2 folder or its manifest.yaml) or a "
                             "--rips_path checkpoint that carries them")
        rips, params = load_topology_inputs(cfg)
        attach_topology(distiller, cfg.delta, method=cfg.method, rips=rips, pi_params=params,
                        tda_layer_t=cfg.tda_layer_t, tda_layer_s=cfg.tda_layer_s, tda_clouds=cfg.tda_clouds)

    def run_tag(self, cfg: argparse.Namespace) -> Tuple[str, str]:
        """``("+topkd", "d-5.0")`` when the term is on, ``("", "d-0.0")`` when off."""
        return (f"+{cfg.method}" if cfg.delta else ""), f"d-{float(cfg.delta)}"


register_addon(TopologyAddOn())
