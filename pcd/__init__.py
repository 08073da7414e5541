"""Stages 2 and 3 of TopKD as library code: teacher point clouds as shards on disk with their persistence diagrams
and images (``generate``, ``sources``; the folder and its manifest: ``manifest``), and the RipsNet training loop
(``ripsnet_train``). The maths lives in ``topology/``; this package moves data."""
