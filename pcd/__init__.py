"""Stages 2 and 3 of TopKD as library code: teacher point clouds streamed to disk in shards, their
persistence diagrams and images (``generate``), the manifest describing a stage-2 folder
(``manifest``), memory-mapped readers (``store``) and the RipsNet training loop (``ripsnet_train``).

The maths (diagrams, images, RipsNet) lives in ``topology/``; this package only moves data.
"""
