"""The training/evaluation loop of the stages that train a classifier (stage 1 teachers, stage 4 students).

The RipsNet of stage 3 is a regression onto persistence images and has its own short loop
(`pcd.ripsnet_train`), which reuses `seed` and `record` from here.

Modules: `config` (argument groups, recipes, ``--config`` YAML read by the stage's own parser), `stage`
(the one setup every stage script calls: logging, threads, process group, seeds; the flags all stages
share), `trainer` (the loop), `record` (a run's identity, provenance, run folder and resume rule), `seed`
(seeding, RNG state for resume), `distributed` (torchrun / DDP helpers; rank and world size), `compile`
(``--compile``, imported only when it is on), `metrics` (top-k accuracy, running means), `evaluate`
(accuracies of any checkpoint: evaluate.py), `topo_eval` (topology metrics of a student against its
teacher). Files and errors are `topkd_io`'s; rebuilding a network is `models.load_model`.
"""
