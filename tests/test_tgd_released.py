"""TGD's released checkpoints in our WRNs: outputs equal the official ones; the key mapping holds for the
wider teachers too (checked against a transcription of TGD's WideResNet); warm start (--init_s)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import model_dict
from models.loading import init_from_checkpoint, is_tgd_state_dict, tgd_to_wrn_state_dict, tgd_wrn_arch

RELEASED = {"tgd_student": "T163_S161_TGD", "kd_student": "T163_S161_kd", "init_student": "wrn161_Student"}


def build_from_tgd_state_dict(sd):
    """Our WRN (eval mode) holding a TGD WideResNet state dict, as the loader builds it."""
    name, options = tgd_wrn_arch(sd)
    model = model_dict[name](**options)
    model.load_state_dict(tgd_to_wrn_state_dict(sd), strict=True)
    return model.eval()


def released(reference_dir, name):
    path = reference_dir / "official_released" / "tgd" / f"{name}.pth.tar"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.mark.parametrize("tag", sorted(RELEASED))
def test_released_students_reproduce_the_official_outputs(reference_dir, tag):
    from topkd_io import safe_load

    ref = np.load(reference_dir / "official_tgd_outputs.npz")
    sd = safe_load(released(reference_dir, RELEASED[tag]))["model_state_dict"]
    assert is_tgd_state_dict(sd) and tgd_wrn_arch(sd) == ("wrn_16_1", {"num_classes": 10})
    model = build_from_tgd_state_dict(sd)
    with torch.no_grad():
        feats, logits = model(torch.from_numpy(ref["x"]), is_feat=True)
    ours = {"logits": logits, "block1": feats[1], "block2": feats[2], "block3": feats[3]}
    for key, value in ours.items():
        want = ref[f"{tag}_{key}"]
        err = np.abs(value.numpy() - want).max() / np.abs(want).max()
        print(f"{tag} {key}: max error / max |official| = {err:.2e}")
        assert value.shape == want.shape and err < 1e-5, (tag, key, err)


@pytest.mark.parametrize("tag", ["tgd_student", "kd_student"])
def test_released_files_load_as_teachers(reference_dir, tag):
    """load_model (--path_t / --path_t2) reads TGD's {'model_state_dict': ...} files as released."""
    from models import load_model

    ref = np.load(reference_dir / "official_tgd_outputs.npz")
    model, arch, _ = load_model(str(released(reference_dir, RELEASED[tag])), num_classes=10)
    assert arch == "wrn_16_1" and not model.training
    with torch.no_grad():
        logits = model(torch.from_numpy(ref["x"])).numpy()
    want = ref[f"{tag}_logits"]
    assert np.abs(logits - want).max() < 1e-5 * np.abs(want).max()


def test_warm_start_from_the_released_student(reference_dir, tmp_path):
    path = released(reference_dir, "wrn161_Student")
    ref = np.load(reference_dir / "official_tgd_outputs.npz")
    student = init_from_checkpoint(model_dict["wrn_16_1"](num_classes=10), str(path)).eval()
    with torch.no_grad():
        logits = student(torch.from_numpy(ref["x"]))
    assert np.abs(logits.numpy() - ref["init_student_logits"]).max() < 1e-5 * np.abs(ref["init_student_logits"]).max()
    with pytest.raises(ValueError, match="does not fit"):
        init_from_checkpoint(model_dict["wrn_16_3"](num_classes=10), str(path))
    with pytest.raises(ValueError, match="does not fit"):
        init_from_checkpoint(model_dict["wrn_16_1"](num_classes=100), str(path))
    with pytest.raises(FileNotFoundError):
        init_from_checkpoint(model_dict["wrn_16_1"](num_classes=10), str(tmp_path / "missing.pth"))
    ours = tmp_path / "ours.pth"
    torch.save({"model": student.state_dict()}, ours)  # our own layout works too
    again = init_from_checkpoint(model_dict["wrn_16_1"](num_classes=10), str(ours))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), student.state_dict().values()))


# ---- TGD's WideResNet, transcribed from its public description (key names and forward) -------------

class _TGDBlock(nn.Module):
    """One pre-activation block with TGD's names; `shortcut` = 1x1 conv_inp on the activated input."""

    def __init__(self, cin, cout, stride, shortcut):
        super().__init__()
        self.batch_norm1, self.batch_norm2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if shortcut:
            self.conv_inp = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        a = F.relu(self.batch_norm1(x))
        y = self.conv2(F.relu(self.batch_norm2(self.conv1(a))))
        return y + (self.conv_inp(a) if hasattr(self, "conv_inp") else x)


class _TGDGroup(nn.Module):
    def __init__(self, n, cin, cout, stride, shortcut):
        super().__init__()
        self.nblockLayer = nn.Sequential(*[_TGDBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1,
                                                     shortcut and i == 0) for i in range(n)])

    def forward(self, x):
        return self.nblockLayer(x)


class _TGDWideResNet(nn.Module):
    """forward -> (logits, block1, block2, block3), as TGD's class returns them."""

    def __init__(self, depth, k, num_classes, in_channels):
        super().__init__()
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.block1 = _TGDGroup(n, 16, 16 * k, 1, shortcut=k > 1)
        self.block2 = _TGDGroup(n, 16 * k, 32 * k, 2, shortcut=True)
        self.block3 = _TGDGroup(n, 32 * k, 64 * k, 2, shortcut=True)
        self.batch_norm = nn.BatchNorm2d(64 * k)
        self.fc = nn.Linear(64 * k, num_classes)

    def forward(self, x):
        b1 = self.block1(self.conv1(x))
        b2 = self.block2(b1)
        b3 = self.block3(b2)
        pooled = F.adaptive_avg_pool2d(F.relu(self.batch_norm(b3)), 1).flatten(1)
        return self.fc(pooled), b1, b2, b3


@pytest.mark.parametrize("k, in_channels, arch", [(3, 3, "wrn_16_3"), (3, 6, "wrn_16_3"), (1, 3, "wrn_16_1")])
def test_mapping_matches_tgd_structure(k, in_channels, arch):
    torch.manual_seed(k + in_channels)
    theirs = _TGDWideResNet(16, k, 10, in_channels)
    with torch.no_grad():  # non-trivial BN statistics, so a swapped BN would show
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    theirs.eval()
    sd = theirs.state_dict()
    name, options = tgd_wrn_arch(sd)
    assert name == arch and options.get("in_channels", 3) == in_channels
    ours = build_from_tgd_state_dict(sd)
    assert set(tgd_to_wrn_state_dict(sd)) == set(ours.state_dict())
    x = torch.randn(2, in_channels, 20, 20)
    with torch.no_grad():
        feats, logits = ours(x, is_feat=True)
        want = theirs(x)
    for got, ref in zip([logits] + feats[1:4], want):
        assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
