"""The training/evaluation loop of the stages that train a classifier (stage 1 teachers, stage 4 students).

The RipsNet of stage 3 is a regression onto persistence images and has its own short loop
(`pcd.ripsnet_train`), which reuses `seed` and `resume` from here.

Modules: `config` (argument groups, recipes, YAML), `trainer` (the loop), `seed` (seeding, RNG state for
resume), `distributed` (torchrun / DDP helpers), `metrics` (top-k accuracy, running means), `resume` (what a
resumed run may change), `identity` (a run's identity and folder hash), `run_folder` (locks and the rule for
writing into a run folder), `provenance` (code, libraries, device and input files of a run), `evaluate`
(accuracies of any checkpoint: evaluate.py).
"""
