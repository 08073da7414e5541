"""torchvision's pretrained ImageNet weights as teachers: bare state dicts named ``<name>-<hash>.pth``
(``resnet34-b627a593.pth``) in our ImageNet networks' keys, so the file name tells the architecture.
``--teacher_weights torchvision`` finds the file in torch's hub cache, downloading it there when missing.

    python -m models.pretrained resnet34 [--no-download]   # the path of the file
"""
import argparse
import contextlib
import os
import re
import sys
from typing import Optional, Sequence

import torch
import torchvision

from topkd_io import TopKDError

# our registry name -> torchvision's model name (same architecture, same state-dict keys)
TORCHVISION_NAMES = {
    "resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50", "resnet101": "resnet101",
    "resnext50_32x4d": "resnext50_32x4d", "wrn_50_2": "wide_resnet50_2",
    "mobilenetv2_imagenet": "mobilenet_v2", "shufflev2_imagenet": "shufflenet_v2_x1_0",
}
# The weights the KD literature's ImageNet tables use (CRD, DKD, ...): torchvision's first release
# (ResNet-34 73.31%, ResNet-50 76.13% top-1). torchvision's DEFAULT for ResNet-50 is a later recipe (V2).
DEFAULT_WEIGHTS = "IMAGENET1K_V1"
TEACHER_WEIGHTS = ("torchvision",)
_TV_FILE = re.compile(r"^(?P<name>[a-z0-9_]+)-[0-9a-f]{8,}$")


def arch_from_torchvision_file(path: str) -> Optional[str]:
    """Our architecture name for a torchvision weight file ``<name>-<hash>.pth``, else None."""
    match = _TV_FILE.match(os.path.splitext(os.path.basename(os.fspath(path)))[0])
    ours = {tv: name for name, tv in TORCHVISION_NAMES.items()}
    return ours.get(match.group("name")) if match else None


def _weights_entry(arch: str, weights: str = DEFAULT_WEIGHTS):
    if arch not in TORCHVISION_NAMES:
        raise TopKDError(f"torchvision has no pretrained weights for {arch!r}; --teacher_weights torchvision "
                         f"works with {', '.join(sorted(TORCHVISION_NAMES))}")
    enum = torchvision.models.get_model_weights(TORCHVISION_NAMES[arch])
    try:
        return enum[weights]
    except KeyError:
        raise TopKDError(f"torchvision's {TORCHVISION_NAMES[arch]} has no weights {weights!r}; choose one of "
                         f"{', '.join(w.name for w in enum)}") from None


def torchvision_weights_file(arch: str, weights: str = DEFAULT_WEIGHTS) -> str:
    """Where torch's hub cache keeps torchvision's ``weights`` of ``arch`` (the file may not exist yet)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(_weights_entry(arch, weights).url))


def torchvision_weights_path(arch: str, weights: str = DEFAULT_WEIGHTS, download: bool = True) -> str:
    """Path of torchvision's pretrained ``arch`` weights, fetched into the hub cache by torchvision's weight API
    when missing and ``download``. FileNotFoundError (offline, or not allowed to download) says which file to
    put where."""
    entry, path = _weights_entry(arch, weights), torchvision_weights_file(arch, weights)
    if os.path.isfile(path):
        return path
    reason = "downloading was not allowed"
    if download:
        try:
            entry.get_state_dict(progress=False, check_hash=True)  # torchvision's loader: writes the cache file
        except Exception as exc:  # no network, proxy refusal, bad hash ...
            reason = f"the download failed ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"torchvision's {arch} weights are not on this machine and {reason}; download "
                            f"{entry.url} and put it at {path} (or pass the file with --path_t and --model_t {arch})")


def resolve_teacher_path(path_t: Optional[str], model_t: Optional[str], teacher_weights: Optional[str]) -> str:
    """The teacher checkpoint for ``--path_t`` or ``--teacher_weights torchvision`` (with ``--model_t``)."""
    if teacher_weights is None:
        if not path_t:
            raise TopKDError("pass the teacher with --path_t, or --teacher_weights torchvision with --model_t")
        return path_t
    if teacher_weights not in TEACHER_WEIGHTS:
        raise TopKDError(f"--teacher_weights must be one of {', '.join(TEACHER_WEIGHTS)}, got {teacher_weights!r}")
    if path_t:
        raise TopKDError("pass either --path_t or --teacher_weights torchvision, not both")
    if not model_t:
        raise TopKDError("--teacher_weights torchvision needs --model_t (e.g. resnet34)")
    return torchvision_weights_path(model_t)


def main(argv: Optional[Sequence[str]] = None) -> str:
    p = argparse.ArgumentParser(description="Print the path of torchvision's pretrained weights of an architecture.")
    p.add_argument("arch", help=f"one of {', '.join(sorted(TORCHVISION_NAMES))}")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS, help="torchvision weight set (default %(default)s)")
    p.add_argument("--no-download", dest="download", action="store_false", help="only print where the file belongs")
    args = p.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the path (scripts capture it)
        path = (torchvision_weights_path if args.download else torchvision_weights_file)(args.arch, args.weights)
    print(path)
    return path


if __name__ == "__main__":
    from topkd_io import run_cli

    run_cli(main)
