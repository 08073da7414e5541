"""The training/evaluation loop of the stages that train a classifier (stage 1 teachers, stage 4 students).

The RipsNet of stage 3 is a regression onto persistence images and has its own short loop
(`pcd.ripsnet_train`), which reuses `checkpoint` and `seed` from here.

Modules: `config` (argument groups, recipes, YAML), `trainer` (the loop), `checkpoint` (atomic save,
loads with clear errors; rebuilding a network is `models.load_model`), `seed` (seeding, RNG state for resume), `distributed`
(torchrun / DDP helpers), `metrics` (top-k accuracy, running means), `cli` (error handling for scripts).
"""
