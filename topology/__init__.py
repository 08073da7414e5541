"""Topology for TopKD: Rips persistence diagrams, persistence images and RipsNet.

Submodules: ``persistence`` (batched Rips diagrams, exact MST H0, differentiable H0), ``images``
(persistence images equal to gudhi's, numpy and torch), ``ripsnet`` (the RipsNet estimator and its
checkpoints). Import them directly, e.g. ``from topology.persistence import rips_diagrams``.
"""
