"""One way to say each thing: the same worker/thread flags in every stage, the one stage setup (logging on
rank 0 only, thread count), --max_steps, and the Trainer leaving process-wide state and the configuration alone."""
import argparse
import logging

import pytest
import torch
import yaml

import generate_image_PI
import generate_PCD_PI
import train_ripsnet
import train_student
import train_teacher
from engine.stage import setup_logging, setup_stage

# each stage's parser with the arguments it requires
STAGES = {
    "train_teacher": (train_teacher.build_parser, []),
    "generate_PCD_PI": (generate_PCD_PI.build_parser, []),
    "train_ripsnet": (train_ripsnet.build_parser, ["--data_dir", "x"]),
    "train_student": (train_student.build_parser, []),
    "generate_image_PI": (generate_image_PI.build_parser, ["--dataset", "digits"]),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_takes_the_same_worker_and_thread_flags(stage):
    build, required = STAGES[stage]
    parser = build()
    args = parser.parse_args(required + ["--num_workers", "3", "--threads", "2"])
    assert (args.num_workers, args.threads) == (3, 2)
    with pytest.raises(SystemExit):  # the old spelling of stages 2, 3 and the PIs is gone
        parser.parse_args(required + ["--workers", "3"])
    assert "--num_workers" in parser.format_help() and "--threads" in parser.format_help()


def test_setup_logs_on_rank_zero_only_and_sets_threads(capsys):
    log = logging.getLogger("engine.trainer")
    try:
        setup_logging(rank=1)
        log.info("rank one speaks")
        log.warning("rank one warns")
        setup_logging(rank=0)
        log.info("rank zero speaks")
        logging.getLogger("some.library").info("a library's own message")
        out = capsys.readouterr().out
        assert out.splitlines() == ["rank one warns", "rank zero speaks"]  # plain lines, as the stages printed
        threads = torch.get_num_threads()
        cfg = argparse.Namespace(threads=1, max_steps=0)
        setup_stage(cfg)
        assert torch.get_num_threads() == 1 and vars(cfg) == {"threads": 1, "max_steps": 0}  # cfg left as it was
    finally:
        torch.set_num_threads(threads)
        setup_logging(rank=0)


def test_trainer_sets_no_threads_and_stops_at_max_steps(tmp_path, capsys):
    from datasets import build_datasets
    from distiller import get_distiller
    from engine.trainer import Trainer
    from helpers import DigitsNet
    from test_engine import make_cfg

    data = build_datasets("digits", "unused", image_size=8)
    cfg = make_cfg(tmp_path / "run", "--epochs", "2", "--threads", "2", "--max_steps", "3", "--amp", "--compile")
    threads, before = torch.get_num_threads(), dict(vars(cfg))
    summary = Trainer(get_distiller("vanilla")(DigitsNet()), data.train, data.test, cfg, cfg.run_dir).fit()
    assert torch.get_num_threads() == threads  # --threads is the stage setup's, not the trainer's
    assert summary["epochs_run"] == 1 and "stopping after 3 steps (--max_steps 3)" in capsys.readouterr().out
    # what ran is recorded (no AMP, no compilation on the CPU), the configuration it was given is left alone
    assert vars(cfg) == before
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["amp"] is False and recorded["compile"] is False
