"""The training/evaluation loop of the stages that train a classifier (stage 1 teachers, stage 4 students)."""
