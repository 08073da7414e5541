"""TopKD's topology term, attached to any teacher -> student method by `train_student.py`'s `build`:

    loss_tda = delta * MSE(PI(cloud_t), PI(proj(cloud_s)))

A cloud is the batch's features at one layer (``[B, C]``; stage maps are global-average-pooled), the whole batch
or ``--tda_clouds`` equal sub-batches. ``PI``: a frozen RipsNet (``--method topkd``, the paper) or the exact
differentiable image (``topkd_exact``); ``--dim 0 1`` lays the two dimensions' images side by side. ``proj``: a
learnable linear map (the official 1x1 convolution on pooled features) when the widths differ. Gradients flow
through the frozen RipsNet into ``proj`` and the student. Below the term: the exact images, then the RipsNets."""
import argparse
import logging
import os
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models.common import check_layer, layer_embedding
from models.loading import check_finite_weights
from pcd.manifest import check_ripsnet_pi, read_pi_params
from pcd.ripsnet_paths import POOLINGS, find_ripsnet
from topkd_io import TopKDError, file_sha256
from topology.persistence import h0_deaths_torch, h1_diagrams_torch
from topology.point_cloud_pi import PIParams, h0_images_torch, h1_images_torch
from topology.ripsnet import load_ripsnet

from .options import Option, resolve, str2bool

log = logging.getLogger(__name__)


class TopologyTerm(nn.Module):
    """pi: ``[K, N, D]`` clouds -> ``[K, P]`` images, held frozen; feat_shapes_s / feat_shapes_t: the shapes of the
    two networks' ``feats``; the keywords: the options declared below."""

    options = (
        Option("delta", 0.0, "weight of the topology term (0 = off)", flags=("-d", "--delta"), source="TopKD",
               low=0.0),
        Option("tda_layer_t", -1, "teacher feature index (-1 = FC input)", source="TopKD"),
        Option("tda_layer_s", None, "student feature index (default: --tda_layer_t)", type=int),
        Option("tda_clouds", 1, "point clouds per batch (1 = the whole batch)", source="TopKD", low=1),
        Option("method", "topkd", "persistence images by the frozen RipsNet (topkd) or exactly (topkd_exact)",
               choices=("topkd", "topkd_exact")),
        Option("dim", 0, "homology dimension(s) matched: 0, 1, or 0 1 (both images side by side)", type=int,
               nargs="+", source="TopKD", low=0, high=1),
        Option("rips_path", None, "RipsNet checkpoint file, run folder or root searched by the official naming rule "
               "and by our stage-3 layout (the one trained on this teacher's stage-2 data is preferred)",
               source="official TopKD default: ripsnet/result", free=True),
        Option("operator", None, "RipsNet pooling; picks <operator>_best.pth (default: whichever one exists)",
               choices=POOLINGS, source="official TopKD default: sum"),
        Option("units_list", None, "RipsNet widths [input, phi x3, rho x4], checked against the loaded RipsNet "
               "(default: stored, else the official width table)", type=int, nargs="+"),
        Option("pi_params", None, "stage-2 folder (or its manifest.yaml) whose PI parameters topkd_exact uses",
               free=True),
        Option("TDA", None, "official switch of the term: True = on (needs -d > 0), False = off whatever -d says "
               "(default: on when -d > 0)", type=str2bool, metavar="True|False", source="official default: True"),
    )

    def __init__(self, pi: nn.Module, feat_shapes_s: Sequence[Sequence[int]], feat_shapes_t: Sequence[Sequence[int]],
                 delta: float, tda_layer_t: int = -1, tda_layer_s: Optional[int] = None, tda_clouds: int = 1,
                 # where ``pi`` comes from (`load_pi`)
                 method: str = "topkd", dim=0, rips_path=None, operator=None, units_list=None, pi_params=None,
                 TDA=None):
        super().__init__()
        self.delta, self.clouds = float(delta), int(tda_clouds)
        self.layer_t = check_layer(tda_layer_t, len(feat_shapes_t), "--tda_layer_t", "teacher")
        self.layer_s = check_layer(tda_layer_t if tda_layer_s is None else tda_layer_s, len(feat_shapes_s),
                                   "--tda_layer_s", "student")
        dim_t, dim_s = feat_shapes_t[self.layer_t][1], feat_shapes_s[self.layer_s][1]
        for part in getattr(pi, "parts", [pi]):
            if getattr(part, "input_dim", None) not in (None, dim_t):
                raise TopKDError(f"the RipsNet takes {part.input_dim}-d points but the teacher's feature at "
                                 f"--tda_layer_t {tda_layer_t} is {dim_t}-d: use the RipsNet trained on this "
                                 f"teacher/layer")
        self.pi = pi.requires_grad_(False).eval()
        self.proj = nn.Linear(dim_s, dim_t) if dim_s != dim_t else nn.Identity()

    def forward(self, feats_s: Sequence[torch.Tensor], feats_t: Sequence[torch.Tensor]) -> torch.Tensor:
        """The weighted scalar ``loss_tda`` (float32, also under autocast)."""
        with torch.autocast(device_type=feats_s[self.layer_s].device.type, enabled=False):
            cloud_t = to_clouds(layer_embedding(feats_t, self.layer_t).detach().float(), self.clouds)
            cloud_s = to_clouds(self.proj(layer_embedding(feats_s, self.layer_s).float()), self.clouds)
            # The RipsNet (or exact image) call, once for the teacher's and the student's clouds: small GPU
            # workloads are launch-bound. The teacher's clouds are detached, so its images get no gradient.
            images = self.pi(torch.cat([cloud_t, cloud_s]))
            pi_t, pi_s = images[: len(cloud_t)].detach(), images[len(cloud_t):]
            return self.delta * F.mse_loss(pi_s, pi_t)

    def train(self, mode: bool = True):
        super().train(mode)
        self.pi.eval()  # frozen: no dropout or BatchNorm updates whatever the outer mode
        return self

    # -- building from the command line ---------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: argparse.Namespace, distiller, inputs: Optional[Dict[str, str]] = None):
        """The term ``cfg`` asks for on ``distiller`` (None with ``-d 0``); ``inputs``: what `input_files` found."""
        options = resolve(cls, cfg)
        if not options["delta"]:
            return None
        pi = load_pi(cfg, dims_of(options["dim"]), inputs or {})
        return cls(pi, distiller.feat_shapes_s, distiller.feat_shapes_t, **options)

    @classmethod
    def check_options(cls, values: Dict[str, Any]) -> Dict[str, Any]:
        """The rules between the options (`distiller.options.resolve`): ``--TDA False`` turns the term off (the
        official switch); one ``--dim`` stays a number, as the official flag."""
        if values["TDA"] is False and values["delta"]:
            log.info(f"note: --TDA False: the topology term is off (-d {values['delta']} ignored, as in the "
                     f"official code)")
            values["delta"] = 0.0
        if values["TDA"] is True and not values["delta"]:
            raise TopKDError("--TDA True needs the weight of the topology term: pass -d/--delta > 0 (e.g. -d 5)")
        dims = dims_of(values["dim"])
        if len(set(dims)) != len(dims):
            raise TopKDError(f"--dim {' '.join(map(str, dims))}: pick distinct homology dimensions "
                             f"(--dim 0, --dim 1 or --dim 0 1)")
        values["dim"] = dims[0] if len(dims) == 1 else list(dims)
        if values["delta"] and values["method"] == "topkd_exact" and not (values["pi_params"] or values["rips_path"]):
            raise TopKDError("--method topkd_exact needs --pi_params (the stage-2 folder or its manifest.yaml) or a "
                             "--rips_path checkpoint that carries them")
        return values

    @classmethod
    def input_files(cls, cfg: argparse.Namespace, must_exist: bool = True) -> Dict[str, str]:
        """The term's input files by flag: ``pi_params``, the RipsNet of each dimension as ``rips_path`` (or
        ``rips_path_dim<k>``). ``must_exist=False`` (``--plan``): a RipsNet not found yet is the path asked for."""
        if not cfg.delta:
            return {}
        out = {"pi_params": cfg.pi_params} if cfg.pi_params else {}
        if cfg.method == "topkd" or cfg.rips_path:
            dims = dims_of(cfg.dim)
            if len(dims) > 1 and cfg.rips_path and os.path.isfile(cfg.rips_path):
                raise TopKDError(f"--dim {' '.join(map(str, dims))} needs one RipsNet per dimension: pass --rips_path "
                                 f"as the root holding them (found by the naming rule ..._dim<k>/), not the file "
                                 f"{cfg.rips_path}")
            for dim in dims:
                try:
                    path = locate_ripsnet(cfg, dim)
                except FileNotFoundError:
                    if must_exist:
                        raise
                    path = cfg.rips_path or "ripsnet/result (not found)"
                out["rips_path" if len(dims) == 1 else f"rips_path_dim{dim}"] = path
        return out

    @classmethod
    def unused_options(cls, cfg: argparse.Namespace) -> Tuple[str, ...]:
        """Options left out of the run's identity: with ``-d 0`` all but ``-d``; else ``--TDA`` (folded into ``-d``)
        and ``--units_list`` (only checked against the RipsNet, whose SHA-256 is in the identity)."""
        if not cfg.delta:
            return tuple(o.name for o in cls.options if o.name != "delta")
        return ("TDA", "units_list")

    @classmethod
    def run_tag(cls, cfg: argparse.Namespace) -> Tuple[str, str]:
        """``("+topkd", "d-5.0")`` when the term is on, ``("", "d-0.0")`` when off."""
        return (f"+{cfg.method}" if cfg.delta else ""), f"d-{float(cfg.delta)}"


def dims_of(dim) -> Tuple[int, ...]:
    return tuple(int(d) for d in (dim if isinstance(dim, (list, tuple)) else [dim]))


def to_clouds(f: torch.Tensor, clouds: int) -> torch.Tensor:
    """``[B, D]`` -> ``[clouds, B // clouds, D]`` (the last ``B % clouds`` samples are left out)."""
    n = f.shape[0] // clouds
    if n < 2:
        raise TopKDError(f"batch of {f.shape[0]} cannot be split into {clouds} point clouds of >= 2 points; "
                         f"lower --tda_clouds or raise --batch_size")
    return f[: n * clouds].reshape(clouds, n, f.shape[1])


# --- exact persistence images (--method topkd_exact), and several dimensions side by side
class ExactH0PI(nn.Module):
    """``[K, N, D]`` clouds -> ``[K, R*R]`` exact H0 persistence images (differentiable in the points)."""

    input_dim = None  # any point width

    def __init__(self, params: PIParams):
        super().__init__()
        self.params = params

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return h0_images_torch(h0_deaths_torch(clouds), self.params).reshape(clouds.shape[0], -1)


class ExactH1PI(ExactH0PI):
    """The same for H1 (gudhi's persistence pairs name the edges, whose lengths are recomputed from the points)."""

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        births, deaths, mask = h1_diagrams_torch(clouds)
        return h1_images_torch(births, deaths, mask, self.params).reshape(clouds.shape[0], -1)


class StackedPI(nn.Module):
    """Image modules of several homology dimensions side by side: ``[K, N, D]`` -> ``[K, sum of P]``."""

    def __init__(self, parts: Sequence[nn.Module]):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, clouds: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(clouds) for p in self.parts], dim=-1)


def stacked(parts: Sequence[nn.Module]) -> nn.Module:
    return parts[0] if len(parts) == 1 else StackedPI(parts)


def exact_images(params: Dict[int, PIParams], dims: Sequence[int]) -> nn.Module:
    missing = [d for d in dims if d not in params]
    if missing:
        raise TopKDError(f"--method topkd_exact has no persistence-image parameters for homology dimension "
                         f"{missing[0]}: pass --pi_params (a stage-2 folder made with --dims covering it) or a "
                         f"--rips_path checkpoint that carries them")
    return stacked([{0: ExactH0PI, 1: ExactH1PI}[d](params[d]) for d in dims])


# --- finding and loading the RipsNets and PI parameters the options name
def load_pi(cfg: argparse.Namespace, dims: Sequence[int], inputs: Dict[str, str]) -> nn.Module:
    """The RipsNet of each dimension (``topkd``), or the exact images of the recorded PI parameters; a RipsNet is
    refused when its images disagree with its record, its weights are not finite, or it learnt another dimension."""
    nets, params = {}, {}
    if cfg.method == "topkd" or cfg.rips_path:
        for dim in dims:
            path = inputs.get("rips_path" if len(dims) == 1 else f"rips_path_dim{dim}") or locate_ripsnet(cfg, dim)
            nets[dim], ckpt = load_ripsnet(path, operator=cfg.operator, units_list=cfg.units_list)
            check_ripsnet_pi(ckpt, path)  # its PI parameters agree with its output and its recorded manifest
            check_finite_weights(nets[dim].state_dict(), path, "--rips_path")
            recorded = ckpt.get("dim")
            recorded = (ckpt.get("pi_params") or {}).get("homology_dim") if recorded is None else recorded
            if recorded is not None and int(recorded) != dim:
                raise TopKDError(f"the RipsNet {path} was trained on H{recorded} images but --dim asks for H{dim}; "
                                 f"pass the RipsNet of train_ripsnet.py --dim {dim}")
            how = ckpt.get("resolved") or {}
            log.info(f"topology term: H{dim} RipsNet {path} ({nets[dim].pooling} pooling from "
                     f"{how.get('pooling_from', 'checkpoint')}, widths {nets[dim].units} from "
                     f"{how.get('units_from', 'checkpoint')})")
            if ckpt["pi_params"] is not None:  # None in official checkpoints
                params[dim] = PIParams.from_dict(ckpt["pi_params"])
    if cfg.pi_params:
        params = {dim: read_pi_params(cfg.pi_params, dim, verify=not getattr(cfg, "no_verify", False))
                  for dim in dims}
    if cfg.method == "topkd":
        return stacked([nets[d] for d in dims])
    return exact_images(params, dims)


def locate_ripsnet(cfg: argparse.Namespace, dim: Optional[int] = None) -> str:
    """The RipsNet checkpoint the flags name, or found by `pcd.ripsnet_paths.find_ripsnet` -> an existing file."""
    dim = cfg.dim if dim is None else dim
    if cfg.rips_path and os.path.isfile(cfg.rips_path):
        return cfg.rips_path
    teacher_sha = file_sha256(cfg.path_t) if cfg.path_t and os.path.isfile(cfg.path_t) else None
    return find_ripsnet(cfg.rips_path, cfg.dataset, cfg.model_t, cfg.batch_size, cfg.tda_layer_t, dim, cfg.operator,
                        teacher_sha=teacher_sha)

