"""The training/evaluation loop of the stages that train a classifier (stage 1 teachers, stage 4 students).

The RipsNet of stage 3 is a regression onto persistence images and has its own short loop
(`pcd.ripsnet_train`), which reuses `seed` and `resume` from here.

Modules: `config` (argument groups, recipes, ``--config`` YAML read by the stage's own parser), `stage`
(the one setup every stage script calls: logging, threads, process group, seeds; the flags all stages
share), `trainer` (the loop), `seed` (seeding, RNG state for resume), `resume` (what a resumed run may
change), `distributed` (torchrun / DDP helpers), `compile` (``--compile``), `metrics` (top-k accuracy,
running means), `identity` (a run's identity and folder hash), `run_folder` (locks and the rule for writing
into a run folder), `provenance` (code, libraries, device and input files of a run), `evaluate` (accuracies
of any checkpoint: evaluate.py), `topo_eval` (topology metrics of a student against its teacher). Files and
errors are `topkd_io`'s; rebuilding a network is `models.load_model`.
"""
