"""torchvision's pretrained weight files as teachers: bare state dicts named ``<name>-<hash>.pth`` load through
load_model; ``--teacher_weights torchvision`` finds them in the hub cache or says where to put them (offline)."""
import urllib.error

import pytest
import torch
import torchvision

from models import load_model
from models.pretrained import (arch_from_torchvision_file, main, resolve_teacher_path, torchvision_weights_file,
                               torchvision_weights_path)


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and no network: every download fails as it does offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def tv_resnet18(tmp_path_factory):
    """torchvision's resnet18 (random weights) saved as torchvision publishes weights: a bare state dict."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path_factory.mktemp("tv") / "resnet18-f37072fd.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_file_names():
    assert arch_from_torchvision_file("/x/resnet34-b627a593.pth") == "resnet34"
    assert arch_from_torchvision_file("resnet50-0676ba61.pth") == "resnet50"
    assert arch_from_torchvision_file("wide_resnet50_2-95faca4d.pth") == "wrn_50_2"
    assert arch_from_torchvision_file("mobilenet_v2-b0353104.pth") == "mobilenetv2_imagenet"
    assert arch_from_torchvision_file("resnet34_best.pth") is None
    assert arch_from_torchvision_file("vgg16-397923af.pth") is None  # not in our zoo


def test_torchvision_file_loads_as_teacher(tv_resnet18):
    net, path = tv_resnet18
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
    for kwargs in ({}, {"arch": "resnet18", "num_classes": 1000}):  # arch from the file name, or given
        model, _, ckpt = load_model(str(path), **kwargs)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="does not fit resnet34"):
        load_model(str(path), arch="resnet34")


def test_teacher_weights_from_hub_cache(hub, tv_resnet18):
    target = torchvision_weights_file("resnet18")
    assert target == str(hub / "resnet18-f37072fd.pth")  # torchvision's own file name for IMAGENET1K_V1
    hub.mkdir(parents=True)
    target_bytes = tv_resnet18[1].read_bytes()
    (hub / "resnet18-f37072fd.pth").write_bytes(target_bytes)
    assert resolve_teacher_path(None, "resnet18", "torchvision") == target  # no network needed
    assert load_model(target)[0] is not None


def test_teacher_weights_offline_message(hub, capsys):
    with pytest.raises(FileNotFoundError) as err:
        torchvision_weights_path("resnet34")
    text = str(err.value)
    assert "\n" not in text and "download failed (URLError" in text
    assert "https://download.pytorch.org/models/resnet34-b627a593.pth" in text
    assert f"put it at {hub / 'resnet34-b627a593.pth'}" in text and "--model_t resnet34" in text
    assert not (hub / "resnet34-b627a593.pth").exists()
    with pytest.raises(FileNotFoundError, match="downloading was not allowed"):
        torchvision_weights_path("resnet50", download=False)
    capsys.readouterr()
    assert main(["resnet50", "--no-download"]) == str(hub / "resnet50-0676ba61.pth")  # the KD papers' V1 weights
    assert capsys.readouterr().out.strip() == str(hub / "resnet50-0676ba61.pth")


@pytest.mark.parametrize("args, words", [
    (("x.pth", "resnet34", "torchvision"), "either --path_t or --teacher_weights"),
    ((None, None, "torchvision"), "needs --model_t"),
    ((None, "resnet20", "torchvision"), "no pretrained weights for 'resnet20'"),
    ((None, "resnet34", "imagenet"), "--teacher_weights must be one of torchvision"),
    ((None, "resnet34", None), "pass the teacher with --path_t"),
])
def test_resolve_teacher_path_errors(args, words):
    with pytest.raises(ValueError, match=words):
        resolve_teacher_path(*args)
