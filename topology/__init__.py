"""Topology for TopKD and TGD: ``persistence`` (Rips diagrams), ``point_cloud_pi`` (persistence images),
``ripsnet``, ``image_pi`` (TGD's image PIs), ``metrics``. Import them directly."""
