"""Topology for TopKD and TGD. Submodules: ``persistence`` (batched Rips diagrams: exact MST H0, differentiable H0
and H1; the kernels' thread pool), ``point_cloud_pi`` (persistence images equal to gudhi's, numpy and torch),
``ripsnet`` (the RipsNet estimator and its checkpoints), ``image_pi`` (TGD's image PIs), ``metrics`` (diagram
distances, image MSE, CKA). Import them directly, e.g. ``from topology.persistence import rips_diagrams``."""
