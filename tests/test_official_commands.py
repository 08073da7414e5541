"""The teacher command lines of ``reference_dir/official_commands.txt`` (official TopKD and RepDistiller users),
run verbatim on a tiny fake CIFAR-100 in torchvision's on-disk format, one optimisation step each
(``--max_steps 1`` appended to each line)."""
import os

import pytest
import torch
import yaml

import train_teacher
from models import load_model
from models.run_names import parse_checkpoint_path
from models import build_model, resolve_arch
from official_tree import TEACHERS, fake_md5, flag_values, official_lines, write_official_tree
from pcd.ripsnet_paths import find_ripsnet
from test_datasets import _write_cifar100  # torchvision's pickle layout, written by hand
from topology.ripsnet import load_ripsnet


@pytest.fixture()
def fake_tree(tmp_path, monkeypatch):
    """A working directory holding ./data/cifar-100-python (one training image per class, 8 test images)."""
    fake_md5(monkeypatch)
    _write_cifar100(tmp_path / "data", n_train=100, n_test=8)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_teacher_lines_are_listed(reference_dir):
    lines = official_lines(reference_dir, "train_teacher.py")
    archs = [args[args.index("--model") + 1] for args in lines]
    assert archs == ["resnet56", "wrn_40_2", "resnet56", "resnet110", "resnet32x4", "vgg13", "ResNet50"]


# the two largest teachers (ResNet50, resnet32x4) take most of this file's time on a CPU: marked slow
@pytest.mark.parametrize("index", [0, 1, 2, 3, pytest.param(4, marks=pytest.mark.slow), 5,
                                   pytest.param(6, marks=pytest.mark.slow)])
def test_official_teacher_line_runs(reference_dir, fake_tree, run_stage, index):
    args = official_lines(reference_dir, "train_teacher.py")[index]
    code, out, err = run_stage(train_teacher.main, args + ["--max_steps", "1"])
    assert code == 0, err
    arch = args[args.index("--model") + 1]
    print(f"[official teacher line {index} {arch}] " + next(l for l in out.splitlines() if l.startswith("epoch 1/")))
    trial = args[args.index("--trial") + 1] if "--trial" in args else "0"
    # the official TopKD folder naming (the official student lines name their teachers so), plus the identity hash
    (run_dir,) = (fake_tree / "save_t_models").glob(f"{arch}_cifar100_epoch_240_bs_64_lr_0.05_decay_0.0005_trial_{trial}-*")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    # the official defaults and flags as typed: 240 epochs, batch 64, milestones 150 180 210
    assert (cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["lr_decay_epochs"]) == (240, 64, 0.05, [150, 180, 210])
    if "--num_workers=1" in args:
        assert cfg["num_workers"] == 1
    assert "epoch 1/240" in out and "stopping after 1 steps (--max_steps 1)" in out
    model, _, ckpt = load_model(str(run_dir / f"{arch}_best.pth"))  # architecture read back from the run folder
    assert ckpt["arch"] == arch and ckpt["num_classes"] == 100 and ckpt["epoch"] == 1


def test_teacher_flags_official_forms(tmp_path, run_stage):
    from engine.config import parse_config

    parser = train_teacher.build_parser()
    for milestones in (["150", "180", "210"], ["150,180,210"]):  # TopKD's nargs form, RepDistiller's string
        cfg = parse_config(parser, ["--lr_decay_epochs", *milestones, "-t", "3", "--model", "ShuffleV1"])
        assert cfg.lr_decay_epochs == [150, 180, 210] and cfg.trial == 3
        assert cfg.lr == 0.01  # the small-network learning rate follows RepDistiller's names too
    yml = tmp_path / "c.yaml"
    yml.write_text("lr_decay_epochs: [30, 60]\n")
    assert parse_config(parser, ["--config", str(yml)]).lr_decay_epochs == [30, 60]
    with pytest.raises(ValueError, match="--lr_decay_epochs must be integers"):
        parse_config(parser, ["--lr_decay_epochs", "150", "x"])
    # architecture names are checked before any data loads: an alias passes, a near miss does not
    empty = ["--dataset", "cifar100", "--data_root", str(tmp_path / "none"), "--device", "cpu"]
    code, _, err = run_stage(train_teacher.main, ["--model", "MobileNetV2"] + empty)
    assert code == 2 and "cifar-100-python" in err
    code, _, err = run_stage(train_teacher.main, ["--model", "mobilenetV2"] + empty)
    assert code == 2 and "unknown architecture 'mobilenetV2' (--model)" in err and "cifar-100" not in err


@pytest.fixture(scope="module")
def official_tree(tmp_path_factory, reference_dir):
    if not (reference_dir / "official_released" / "topkd").is_dir():
        pytest.skip("official released files not found")
    return write_official_tree(tmp_path_factory.mktemp("official"), reference_dir)


def test_student_lines_find_their_teacher_and_ripsnet(reference_dir, official_tree, monkeypatch):
    """Each train_student.py line's files, found as the official code finds them: the teacher checkpoint saved
    the official way (architecture from its folder), the student name, and with --TDA True the released
    RipsNet by the official naming rule, loaded with the line's --operator / --units_list."""
    monkeypatch.chdir(official_tree)
    lines = official_lines(reference_dir, "train_student.py")
    assert len(lines) == 11  # 2 TopKD lines, 9 RepDistiller lines
    found_ripsnets = set()
    for args in lines:
        path_t = flag_values(args, "--path_t")[0]
        teacher, _, ckpt = load_model(path_t)
        arch = TEACHERS[os.path.normpath(path_t)]
        assert parse_checkpoint_path(path_t).arch == arch and type(teacher) is type(build_model(arch, 100))
        resolve_arch(flag_values(args, "--model_s")[0], "--model_s")  # RepDistiller's names too
        if flag_values(args, "--TDA") != ["True"]:
            continue
        path = find_ripsnet(None, flag_values(args, "--dataset")[0], arch, int(flag_values(args, "--batch_size")[0]),
                            int(flag_values(args, "--tda_layer_t")[0]), flag_values(args, "--dim")[0],
                            flag_values(args, "--operator")[0])
        rips, _ = load_ripsnet(path, operator=flag_values(args, "--operator")[0],
                               units_list=[int(u) for u in flag_values(args, "--units_list")])
        with torch.no_grad():
            feats, _ = teacher(torch.randn(4, 3, 32, 32), is_feat=True)
            assert rips(feats[-1]).shape == (1, 400)  # the RipsNet takes this teacher's FC input
        found_ripsnets.add(os.path.relpath(path, "ripsnet/result"))
    assert found_ripsnets == {"cifar100_resnet56_batch64_FCinput_PCD_dim0/mean_best.pth",
                              "cifar100_wrn_40_2_batch64_FCinput_PCD_dim0/sum_best.pth"}


def _student_line_id(args):
    return f"{flag_values(args, '--distill')[0]}-{flag_values(args, '--model_s')[0]}" + \
        ("-TDA" if flag_values(args, "--TDA") == ["True"] else "") + f"-a{(flag_values(args, '-a', '--alpha') or ['-'])[0]}"


@pytest.fixture()
def in_official_tree(official_tree, monkeypatch):
    fake_md5(monkeypatch)
    monkeypatch.chdir(official_tree)
    return official_tree


# every train_student.py line of official_commands.txt, verbatim (TopKD's 2, RepDistiller's 9)
@pytest.mark.parametrize("index", range(11))
def test_official_student_line_runs(reference_dir, in_official_tree, run_stage, index):
    import train_student
    from distiller import canonical_name

    args = official_lines(reference_dir, "train_student.py")[index]
    code, out, err = run_stage(train_student.main, args + ["--max_steps", "1"])
    assert code == 0, err
    print(f"[official line {index} {_student_line_id(args)}] " + next(l for l in out.splitlines() if l.startswith("epoch 1/")))
    assert "epoch 1/" in out and "stopping after 1 steps (--max_steps 1)" in out
    cfgs = [yaml.safe_load(p.read_text()) for p in (in_official_tree / "save_s_models").glob("*/config.yaml")]
    cfg = next(c for c in cfgs if c["trial"] == int(flag_values(args, "--trial")[0]) and
               c["model_s"] == resolve_arch(flag_values(args, "--model_s")[0]) and
               c["distill"] == canonical_name(flag_values(args, "--distill")[0]) and
               c["alpha"] == float(flag_values(args, "-a", "--alpha")[0]))
    # the flags mean what they mean in the official code
    want = {"gamma": float((flag_values(args, "-r", "--gamma") or ["1"])[0]),  # -r defaults to 1 there
            "alpha": float(flag_values(args, "-a", "--alpha")[0]), "beta": float(flag_values(args, "-b", "--beta")[0])}
    assert {k: cfg[k] for k in want} == want
    assert cfg["epochs"] == int((flag_values(args, "--epochs") or ["240"])[0])
    assert cfg["lr_decay_epochs"] == [150, 180, 210]
    header = next(l for l in out.splitlines() if l.startswith("recipe "))
    assert f"{want['gamma']}*CE" in header and cfg["loss"] in header
    if flag_values(args, "--TDA") == ["True"]:
        delta = float(flag_values(args, "-d", "--delta")[0])
        assert cfg["delta"] == delta and f"{delta}*tda" in cfg["loss"] and "loss_tda" in out
        op = flag_values(args, "--operator")[0]
        # the released RipsNet, found by the official naming rule, with the line's pooling and widths
        assert cfg["operator"] == op and cfg["units_list"] == [int(u) for u in flag_values(args, "--units_list")]
        assert "ripsnet/result/cifar100_" in out and f"/{op}_best.pth" in out
    else:
        assert cfg["delta"] == 0.0 and "loss_tda" not in out


def test_official_student_flag_forms(reference_dir, in_official_tree, run_stage):
    """--TDA False turns the term off whatever -d says; --units_list that does not fit the RipsNet is one line;
    hint_L2 / hint_KD (official TopKD) and method names in any case parse."""
    import train_student

    base = official_lines(reference_dir, "train_student.py")[0] + ["--max_steps", "1"]

    def with_(args, flag, *values):
        i = args.index(flag)
        j = i + 1
        while j < len(args) and not args[j].startswith("--"):
            j += 1
        return args[:i + 1] + list(values) + args[j:]

    code, out, err = run_stage(train_student.main, with_(base, "--TDA", "False") + ["--run_dir", "r_off"])
    assert code == 0, err
    assert "--TDA False: the topology term is off" in out and "loss_tda" not in out
    assert yaml.safe_load((in_official_tree / "r_off" / "config.yaml").read_text())["delta"] == 0.0
    code, _, err = run_stage(train_student.main, with_(base, "--units_list", "64", "30", "20", "10", "50", "100",
                                                       "200", "400") + ["--run_dir", "r_units"])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--units_list [64, 30, 20, 10, 50, 100, 200, 400] does not match" in err and "[64, 64, 32, 32" in err
    assert not (in_official_tree / "r_units").exists()
    code, _, err = run_stage(train_student.main, with_(base, "--TDA", "maybe"))
    assert code == 2 and "expected True or False" in err
    for name in ("hint_L2", "hint_KD", "Hint_l2"):
        code, out, err = run_stage(train_student.main, with_(base, "--distill", name) +
                                   ["--hint_layer", "-1", "--run_dir", f"r_{name}"])
        assert code == 0, err
        assert "loss_hint" in out, out
