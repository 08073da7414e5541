"""RipsNet: a DeepSets network that predicts the persistence image of a point cloud.

phi (per point): three dense layers with bias and ReLU; pooling over the points (sum or mean); rho: three dense
ReLU layers and a dense sigmoid output, all without bias. Layer names ``layer1`` ... ``layer7`` (each holding
``.linear``) match the official TopKD checkpoints, which load unchanged; ours add ``pooling``, ``units``,
``pi_params`` (a `PIParams` dict, or None) and ``manifest`` (the stage-2 manifest)."""
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from topkd_io import TopKDError, load_checkpoint, save_torch

# Widths [input, phi1, phi2, phi3] of the official RipsNets by input dimension; rho is always
# [50, 100, 200] followed by the R*R output.
PHI_UNITS: Dict[int, Tuple[int, int, int, int]] = {
    16: (16, 16, 16, 16), 32: (32, 32, 16, 16), 64: (64, 64, 32, 32), 128: (128, 128, 64, 64),
    256: (256, 256, 128, 128), 512: (512, 512, 256, 256), 1024: (1024, 512, 256, 256), 2048: (2048, 1024, 512, 256),
}
RHO_HIDDEN = (50, 100, 200)
POOLINGS = {"sum": lambda h, dim: h.sum(dim=dim), "mean": lambda h, dim: h.mean(dim=dim)}


def default_units(input_dim: int, resolution: int = 20) -> List[int]:
    """The official width list ``[D, phi1, phi2, phi3, 50, 100, 200, R*R]`` for input width D."""
    if input_dim not in PHI_UNITS:
        raise TopKDError(f"no default RipsNet widths for input dimension {input_dim} (known: "
                         f"{', '.join(map(str, sorted(PHI_UNITS)))}); give the 8 widths yourself "
                         f"(train_ripsnet.py --units {input_dim},a,b,c,50,100,200,{resolution * resolution})")
    return [*PHI_UNITS[input_dim], *RHO_HIDDEN, resolution * resolution]


class _Dense(nn.Module):
    """``linear`` followed by an activation (keeps the official ``layerK.linear.*`` keys)."""

    def __init__(self, n_in: int, n_out: int, bias: bool, activation: nn.Module):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out, bias=bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class RipsNet(nn.Module):
    """Point clouds ``[B, N, D]`` -> persistence images ``[B, R*R]``; one cloud ``[N, D]`` -> ``[1, R*R]``. pooling:
    ``"sum"`` or ``"mean"`` over the points; units: the 8 widths ``[D, phi1, phi2, phi3, rho1, rho2, rho3, R*R]``
    (default: the official table for D)."""

    def __init__(self, input_dim: int, pooling: str = "mean", units: Optional[Sequence[int]] = None,
                 resolution: int = 20):
        super().__init__()
        if pooling not in POOLINGS:
            raise TopKDError(f"unknown RipsNet pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
        units = list(units) if units is not None else default_units(int(input_dim), resolution)
        if len(units) != 8 or min(units) < 1:
            raise TopKDError(f"RipsNet units must be 8 positive widths [D, a, b, c, d, e, f, out], got {units}")
        if units[0] != input_dim:
            raise TopKDError(f"RipsNet units start with input width {units[0]} but input_dim is {input_dim}")
        self.input_dim = int(input_dim)
        self.pooling = pooling
        self.units = [int(u) for u in units]
        for k in range(7):
            phi = k < 3
            act: nn.Module = nn.ReLU() if k < 6 else nn.Sigmoid()
            setattr(self, f"layer{k + 1}", _Dense(units[k], units[k + 1], bias=phi, activation=act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3:
            raise TopKDError(f"RipsNet expects point clouds [B, N, D] or one cloud [N, D], got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_dim:
            raise TopKDError(f"RipsNet expects D={self.input_dim} features, got {x.shape[-1]}: use a RipsNet trained "
                             f"on {x.shape[-1]}-d features or project the features to {self.input_dim} first")
        h = self.layer3(self.layer2(self.layer1(x)))  # [B, N, phi3]
        h = POOLINGS[self.pooling](h, 1)  # [B, phi3]
        return self.layer7(self.layer6(self.layer5(self.layer4(h))))

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, pooling={self.pooling!r}, units={self.units}"


def save_ripsnet(model: RipsNet, path: Union[str, os.PathLike], pi_params: Any = None,
                 manifest: Optional[dict] = None, **extra: Any) -> None:
    """Write ``model`` with what rebuilds it, the PIParams (or dict) its targets were made with, a free-form
    ``manifest`` and ``extra`` entries (epoch, best_val_mse, ...); the official key names too."""
    if pi_params is not None and hasattr(pi_params, "to_dict"):
        pi_params = pi_params.to_dict()
    save_torch({"model": model.state_dict(), "units_list": list(model.units), "operator": model.pooling,
                "pooling": model.pooling, "units": list(model.units), "pi_params": pi_params,
                "manifest": dict(manifest or {}), **extra}, path)


def pooling_from_file_name(path: Union[str, os.PathLike]) -> Optional[str]:
    """``mean`` / ``sum`` from a checkpoint named ``<pooling>_best.pth`` or ``_last.pth``, else None."""
    head, _, tail = os.path.splitext(os.path.basename(os.fspath(path)))[0].rpartition("_")
    return head if head in POOLINGS and tail in ("best", "last") else None


def load_ripsnet(path: Union[str, os.PathLike], map_location: Union[str, torch.device] = "cpu",
                 operator: Optional[str] = None, units_list: Optional[Sequence[int]] = None) -> Tuple[RipsNet, dict]:
    """An official or our RipsNet checkpoint -> (model in eval mode, checkpoint dict). Pooling: ``operator`` (the
    official ``--operator``), else the checkpoint's, else the file name (``<pooling>_best.pth``). Widths: ``units_list``
    (the official ``--units_list``; checked against the weights), else the checkpoint's, else the official table for
    the weights' shapes, else those shapes. The dict carries ``pi_params`` (None for official checkpoints) and
    ``resolved`` (the pooling and widths used, and where they came from)."""
    path = os.fspath(path)
    ckpt = load_checkpoint(path, map_location, what="RipsNet checkpoint",
                           hint="pass the <pooling>_best.pth written by train_ripsnet.py")
    state = ckpt.get("model")
    try:  # the 8 widths read off the weight shapes
        found = [int(state["layer1.linear.weight"].shape[1])] + [
            int(state[f"layer{k}.linear.weight"].shape[0]) for k in range(1, 8)]
    except (TypeError, KeyError, AttributeError, IndexError):
        raise TopKDError(f"{path} is not a RipsNet checkpoint (expected a 'model' state dict with the weights "
                         f"layer1.linear.weight ... layer7.linear.weight, 2-D)") from None
    stored_units = ckpt.get("units") or ckpt.get("units_list")
    side = int(round(found[-1] ** 0.5))
    if units_list is not None:
        units, units_from = [int(u) for u in units_list], "argument"
        if units != found:
            raise TopKDError(f"--units_list {units} does not match the RipsNet {path}, whose weights have "
                             f"widths {found}; pass --units_list {' '.join(map(str, found))} or another RipsNet")
    elif stored_units is not None:
        units, units_from = [int(u) for u in stored_units], "checkpoint"
    elif found[0] in PHI_UNITS and side * side == found[-1] and default_units(found[0], side) == found:
        units, units_from = found, "official width table"
    else:
        units, units_from = found, "weight shapes"
    stored_pooling = ckpt.get("pooling") or ckpt.get("operator")
    if operator is not None:
        if stored_pooling is not None and stored_pooling != operator:
            raise TopKDError(f"--operator {operator} does not match the RipsNet {path}, which was trained with "
                             f"{stored_pooling} pooling; pass --operator {stored_pooling} or another RipsNet")
        pooling, pooling_from = operator, "argument"
    elif stored_pooling is not None:
        pooling, pooling_from = stored_pooling, "checkpoint"
    elif pooling_from_file_name(path) is not None:
        pooling, pooling_from = pooling_from_file_name(path), "file name"
    else:
        raise TopKDError(f"{path}: the checkpoint does not say its pooling (no 'pooling'/'operator' entry, file "
                         f"name not <mean|sum>_best.pth); pass the pooling (--operator mean or sum)")
    model = RipsNet(int(units[0]), pooling=pooling, units=units)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise TopKDError(f"{path}: weights do not fit a RipsNet with units {list(units)}: "
                         f"{' '.join(first[:2])}") from None
    model.eval()
    ckpt.setdefault("pi_params", None)
    ckpt["resolved"] = {"pooling": pooling, "pooling_from": pooling_from, "units": list(units),
                        "units_from": units_from}
    return model, ckpt
