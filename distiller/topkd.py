"""TopKD's topology term, attachable to any teacher -> student method.

``loss_tda = delta * MSE(PI(cloud_t), PI(proj(cloud_s)))`` where a cloud is the batch's features at one
layer (``[B, C]``; stage maps are global-average-pooled), the whole batch as one point cloud or split into
``clouds`` equal sub-batch clouds, and ``PI`` is either a frozen RipsNet (``method="topkd"``, the paper)
or the exact differentiable H0 persistence image (``method="topkd_exact"``). ``proj`` is a learnable linear
map (the official 1x1 convolution on pooled features) present only when the widths differ. Gradients flow
through the frozen RipsNet into the projector and the student; the teacher side is computed without them.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .teacher_student import TeacherStudent, check_layer


def pooled_feature(f: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C]`` by the spatial mean; ``[B, C, 1, 1]`` / ``[B, C]`` -> ``[B, C]``."""
    if f.dim() == 4:
        return f.mean(dim=(2, 3))
    return f.flatten(1)


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


class RipsNetImages(nn.Module):
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


class ExactH0Images(nn.Module):
    """``[K, N, D]`` clouds -> ``[K, R*R]`` exact H0 persistence images (differentiable in the points).

    ``params``: a ``topology.images.PIParams`` (the stage-2 manifest's or the RipsNet checkpoint's).
    """

    def __init__(self, params):
        super().__init__()
        from topology.persistence import h0_deaths_torch
        from topology.images import h0_images_torch

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
            clouds_t = to_clouds(pooled_feature(feats_t[self.layer_t]).detach().float(), self.clouds)
            clouds_s = to_clouds(self.proj(pooled_feature(feats_s[self.layer_s]).float()), self.clouds)
            # One call for teacher and student clouds (one RipsNet pass, one tree search): small GPU
            # workloads are launch-bound. The teacher's clouds are detached, so its images get no gradient.
            images = self.images(torch.cat([clouds_t, clouds_s]))
            pi_t, pi_s = images[: len(clouds_t)].detach(), images[len(clouds_t):]
            return self.delta * F.mse_loss(pi_s, pi_t)


def _ripsnet_images(rips=None, **_) -> nn.Module:
    if rips is None:
        raise ValueError("TopKD with a RipsNet needs --rips_path (the stage-3 RipsNet checkpoint), "
                         "or use --method topkd_exact, or set --delta 0")
    return RipsNetImages(rips)


def _exact_images(pi_params=None, **_) -> nn.Module:
    if pi_params is None:
        raise ValueError("--method topkd_exact needs persistence-image parameters: pass --pi_params "
                         "(the stage-2 folder or its manifest.yaml) or a --rips_path checkpoint that carries them")
    return ExactH0Images(pi_params)


# --method name -> builder of the image module
IMAGE_METHODS: Dict[str, Callable[..., nn.Module]] = {"topkd": _ripsnet_images, "topkd_exact": _exact_images}


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
    if method not in IMAGE_METHODS:
        raise ValueError(f"unknown --method {method!r}; choose one of: {', '.join(IMAGE_METHODS)}")
    tda_layer_s = tda_layer_t if tda_layer_s is None else tda_layer_s
    layer_t = check_layer(tda_layer_t, len(distiller.feat_shapes_t), "--tda_layer_t", "teacher")
    layer_s = check_layer(tda_layer_s, len(distiller.feat_shapes_s), "--tda_layer_s", "student")
    dim_t = distiller.feat_shapes_t[layer_t][1]
    dim_s = distiller.feat_shapes_s[layer_s][1]
    images = IMAGE_METHODS[method](rips=rips, pi_params=pi_params)
    if images.input_dim is not None and images.input_dim != dim_t:
        raise ValueError(f"the RipsNet takes {images.input_dim}-d points but the teacher's feature at "
                         f"--tda_layer_t {tda_layer_t} is {dim_t}-d: use the RipsNet trained on this teacher/layer")
    term = TopologyTerm(images, delta, layer_s, layer_t, dim_s, dim_t, tda_clouds)
    p = next(distiller.student.parameters(), None)
    if p is not None:
        term.to(p.device)
    distiller.add_term("loss_tda", term)
    return term
