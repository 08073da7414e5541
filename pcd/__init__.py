"""Stages 2 and 3 of TopKD as library code: teacher point clouds with their persistence diagrams and images on disk,
and the RipsNet training loop. The maths lives in ``topology/``; this package moves data."""
