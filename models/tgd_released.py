"""TGD's released checkpoints (``{'model_state_dict', 'optimizer_state_dict', 'epoch'}``) in our WRNs.

TGD ships its own WideResNet class. Its blocks are the same pre-activation blocks as ``models.wrn``
(BN-ReLU-conv twice; a 1x1 shortcut on the activated input when width or stride changes), and its
forward returns ``(logits, block1, block2, block3)``, which are our ``feats[1:4]``. Only the key names
differ:

| TGD                                   | ours                              |
| ------------------------------------- | --------------------------------- |
| ``block<g>.nblockLayer.<i>.``         | ``block<g>.layer.<i>.``           |
| ``batch_norm1`` / ``batch_norm2``     | ``bn1`` / ``bn2`` (inside blocks) |
| ``conv_inp``                          | ``convShortcut``                  |
| ``batch_norm.`` (after block 3)       | ``bn1.``                          |
| ``conv1``, ``fc``, block ``conv1/2``  | unchanged                         |
"""
from __future__ import annotations

import re
from typing import Dict, Tuple

import torch
from torch import nn

from .registry import model_dict

__all__ = ["is_tgd_state_dict", "tgd_to_wrn_state_dict", "tgd_wrn_arch", "TGD_KEY_RULES"]

# (pattern, replacement) applied in order to every key; the first three rename inside blocks.
TGD_KEY_RULES = (
    (re.compile(r"^(block\d+)\.nblockLayer\.(\d+)\."), r"\1.layer.\2."),
    (re.compile(r"^(block\d+\.layer\.\d+)\.batch_norm([12])\."), r"\1.bn\2."),
    (re.compile(r"^(block\d+\.layer\.\d+)\.conv_inp\."), r"\1.convShortcut."),
    (re.compile(r"^batch_norm\."), "bn1."),
)


def is_tgd_state_dict(state_dict: Dict[str, torch.Tensor]) -> bool:
    """True when the keys are TGD's WideResNet names (``block1.nblockLayer.0....``)."""
    return any(".nblockLayer." in k for k in state_dict)


def tgd_to_wrn_state_dict(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """TGD WideResNet state dict -> the same tensors under ``models.wrn`` key names (order kept)."""
    out = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in TGD_KEY_RULES:
            new = pattern.sub(repl, new)
        if new in out:
            raise ValueError(f"TGD key {key!r} maps onto {new!r} twice; not a TGD WideResNet state dict")
        out[new] = value
    return out


def tgd_wrn_arch(state_dict: Dict[str, torch.Tensor]) -> Tuple[str, Dict[str, int]]:
    """``(architecture name, options)`` of a TGD WideResNet state dict (either key naming), e.g.
    ``("wrn_16_1", {"num_classes": 10})``; ``in_channels`` is added when it is not 3 (the PI teacher)."""
    sd = tgd_to_wrn_state_dict(state_dict) if is_tgd_state_dict(state_dict) else state_dict
    try:
        blocks = {int(m.group(1)) for k in sd for m in [re.match(r"^block1\.layer\.(\d+)\.", k)] if m}
        width = int(sd["block1.layer.0.conv1.weight"].shape[0])
        in_channels = int(sd["conv1.weight"].shape[1])
        num_classes = int(sd["fc.weight"].shape[0])
    except KeyError as exc:
        raise ValueError(f"not a WideResNet state dict (no {exc.args[0]!r})") from None
    if not blocks or width % 16:
        raise ValueError(f"not a WideResNet state dict (block1 width {width}, {len(blocks)} blocks)")
    options = {"num_classes": num_classes}
    if in_channels != 3:
        options["in_channels"] = in_channels
    return f"wrn_{6 * len(blocks) + 4}_{width // 16}", options


def build_from_tgd_state_dict(state_dict: Dict[str, torch.Tensor]) -> nn.Module:
    """Our WRN (eval mode) holding the weights of a TGD WideResNet state dict; ValueError when the
    depth/width has no registered architecture."""
    name, options = tgd_wrn_arch(state_dict)
    if name not in model_dict:
        raise ValueError(f"the TGD checkpoint is a {name}, which is not a registered architecture; "
                         f"register it in models/wrn.py (VARIANTS)")
    model = model_dict[name](**options)
    model.load_state_dict(tgd_to_wrn_state_dict(state_dict) if is_tgd_state_dict(state_dict) else state_dict,
                          strict=True)
    return model.eval()
