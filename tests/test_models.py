"""models/: the registry, the uniform forward, and equality with the official zoo and torchvision.

References are independent of our code: the official state-dict layouts and the official resnet20
checkpoint with its recorded outputs (``reference_dir``), and torchvision's own models.
"""
import json

import numpy as np
import pytest
import torch
from topkd_io import safe_load
import torchvision

from contracts import check_model_contract
from models import build_model, info_of, model_dict, model_names
# our name -> torchvision constructor with the same modules and keys
TORCHVISION = {
    "resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50", "resnet101": "resnet101",
    "resnext50_32x4d": "resnext50_32x4d", "wrn_50_2": "wide_resnet50_2",
    "mobilenetv2_imagenet": "mobilenet_v2", "shufflev2_imagenet": "shufflenet_v2_x1_0",
}


@pytest.fixture(scope="module")
def official(reference_dir):
    with open(reference_dir / "official_state_dicts.json") as f:
        return json.load(f)


def _check_forward(model, x, num_classes):
    """One forward with is_feat: shapes of logits and features, and feat_dims."""
    with torch.no_grad():
        feats, logits = model(x, is_feat=True)
    b = x.shape[0]
    assert logits.shape == (b, num_classes)
    assert torch.isfinite(logits).all()
    assert feats[-1].shape == (b, model.feat_dims[-1])
    assert [f.shape[1] for f in feats] == list(model.feat_dims)
    assert all(isinstance(c, int) for c in model.feat_dims)
    assert all(f.dim() == 4 for f in feats[:-1])


# Every registered architecture, whatever registers it: the registry is the list.
@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_keeps_the_contract(name):
    """A forward on a 32x32 batch (models pool adaptively), feat_dims, a state-dict round trip, and a
    declared ModelInfo."""
    check_model_contract(model_dict[name])
    assert info_of(name) is not None


def test_small_lr_is_declared_by_the_official_small_networks():
    # the official rule: lr 0.01 for MobileNetV2 and ShuffleNet students (aliases resolve to the same entry)
    assert all(info_of(n).small_lr for n in ("mobilenetv2", "MobileNetV2", "ShuffleV1", "shufflev2"))
    assert not any(info_of(n).small_lr for n in ("resnet20", "wrn_40_2", "vgg8", "ResNet50"))
    assert info_of("no_such_net") is None


def test_plain_forward_equals_is_feat_logits():
    model = model_dict["wrn_16_1"](num_classes=5).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x, is_feat=True)[1])


def test_default_class_counts():
    assert model_dict["resnet8"]().fc.out_features == 100
    assert model_dict["resnet18"]().fc.out_features == 1000


def test_state_dicts_equal_official(official):
    """Keys (in order), shapes and parameter counts of every official entry."""
    for name, ref in official.items():
        if name == "shufflev2_imagenet":
            continue  # see test_shufflev2_imagenet_vs_official
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = model_dict[name](num_classes=ref["num_classes"])
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert list(ours) == list(ref["state_dict"]), name
        assert ours == ref["state_dict"], name
        assert sum(p.numel() for p in model.parameters()) == ref["num_params"], name


def test_shufflev2_imagenet_vs_official(official):
    """The recorded official layout lacks torchvision's conv5 (464 -> 1024) yet keeps a 1024-input fc, so it
    cannot run a forward pass; ours keeps conv5 (torchvision's layout) and otherwise equals it."""
    ref = official["shufflev2_imagenet"]
    model = model_dict["shufflev2_imagenet"](num_classes=ref["num_classes"])
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    extra = {k: v for k, v in ours.items() if k not in ref["state_dict"]}
    assert all(k.startswith("conv5.") for k in extra)
    assert {k: v for k, v in ours.items() if k not in extra} == ref["state_dict"]
    conv5 = sum(p.numel() for p in model.conv5.parameters())
    assert sum(p.numel() for p in model.parameters()) - conv5 == ref["num_params"]


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_weights_load_strictly(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, TORCHVISION[name])(weights=None).eval()
    ours = model_dict[name](num_classes=1000).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_mobilenetv1_size():
    # the ImageNet MobileNet (width 1.0): 4,231,976 parameters at 1000 classes
    assert sum(p.numel() for p in model_dict["MobileNetV1"]().parameters()) == 4_231_976


def test_official_resnet20_checkpoint_reproduces_outputs(reference_dir):
    ckpt = safe_load(reference_dir / "official_resnet20_topkd_cifar100.pth")
    model = model_dict["resnet20"](num_classes=100)
    model.load_state_dict(ckpt["model"], strict=True)
    model.eval()
    ref = np.load(reference_dir / "official_outputs.npz")
    with torch.no_grad():
        feats, logits = model(torch.from_numpy(ref["x"]), is_feat=True)
    np.testing.assert_allclose(logits.numpy(), ref["resnet20_logits"], rtol=1e-5, atol=1e-4)
    assert len(feats) == 5
    for i, feat in enumerate(feats):
        expected = ref[f"resnet20_feat{i}"]
        np.testing.assert_allclose(feat.numpy().reshape(expected.shape), expected, rtol=1e-5, atol=1e-4)
    assert feats[-1].shape == (4, 64)


def test_unknown_architecture_message():
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet9'; choose one of: .*resnet20"):
        build_model("resnet9", 10)


def test_unsupported_option_is_value_error():
    with pytest.raises(ValueError, match="does not accept"):
        build_model("shufflev1", 10, in_channels=6)


@pytest.mark.parametrize("name", ["resnet8", "resnet20", "wrn_16_1"])
def test_digits_sized_input(name):
    model = build_model(name, 10, in_channels=1).eval()
    _check_forward(model, torch.randn(2, 1, 16, 16), 10)


def test_tgd_persistence_image_teacher():
    # TGD's PI teacher: WRN-16-3 on 6-channel 50x50 persistence images
    model = build_model("wrn_16_3", 10, in_channels=6).eval()
    assert model.conv1.in_channels == 6
    _check_forward(model, torch.randn(2, 6, 50, 50), 10)
    assert model.feat_dims == [16, 48, 96, 192, 192]


def test_bad_in_channels_and_tiny_vgg_input():
    with pytest.raises(ValueError, match="in_channels"):
        build_model("resnet8", 10, in_channels=0)
    with pytest.raises(ValueError, match="at least 8x8"):
        build_model("vgg8", 10).eval()(torch.randn(1, 3, 4, 4))


def test_training_step_backpropagates():
    model = build_model("resnet8", 5).train()
    feats, logits = model(torch.randn(4, 3, 16, 16), is_feat=True)
    (logits.sum() + feats[-1].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_preact_features_follow_the_reference_conventions():
    """RepDistiller/mdistiller: a ResNet stage's pre-ReLU map is its last block's sum before the ReLU (the stem is
    kept); a WRN stage's is the next BN's output on it (pre-activation blocks); the embedding is unchanged."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    resnet = model_dict["resnet8"](num_classes=5).eval()
    with torch.no_grad():
        feats, _ = resnet(x, is_feat=True)
        pre, _ = resnet(x, is_feat=True, preact=True)
        block = resnet.layer3[-1]
        inner = torch.relu(block.bn1(block.conv1(feats[2])))
        by_hand = block.bn2(block.conv2(inner)) + block.downsample(feats[2])
    assert torch.equal(pre[0], feats[0]) and torch.equal(pre[-1], feats[-1])
    torch.testing.assert_close(pre[3], by_hand)
    wrn = model_dict["wrn_16_1"](num_classes=5).eval()
    with torch.no_grad():
        feats, _ = wrn(x, is_feat=True)
        pre, _ = wrn(x, is_feat=True, preact=True)
        torch.testing.assert_close(pre[1], wrn.block2.layer[0].bn1(feats[1]))
        torch.testing.assert_close(pre[3], wrn.bn1(feats[3]))
