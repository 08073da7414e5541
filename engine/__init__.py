"""The one training/evaluation loop shared by every stage that trains a network (teachers and students).

Modules: `config` (argument groups, recipes, YAML), `trainer` (the loop), `checkpoint` (atomic save,
loading ours and the official checkpoints), `seed` (seeding, RNG state for resume), `distributed`
(torchrun / DDP helpers), `metrics` (top-k accuracy, running means), `cli` (error handling for scripts).
"""
