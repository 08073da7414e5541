"""The training/evaluation loop of the stages that train a classifier (stage 1 teachers, stage 4 students):
`config` (options, recipes), `stage` (the setup every stage script runs; seeds), `record` (a run's identity,
provenance and folder), `trainer` (the loop), `distributed` (torchrun), `topo_eval` and `evaluate`."""
