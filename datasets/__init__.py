"""Data sets for topkd: CIFAR-100/10, ImageNet and CINIC-10 (ImageFolder trees), scikit-learn digits.
`build_datasets(name, root, ...)` -> `DataBundle`; every item is `(image, target, index)` (docs/CONTRACTS.md)."""
from . import transforms
from .bundle import DataBundle
from .registry import (DATASET_BUILDERS, DATASET_INFO, DatasetInfo, build_datasets, data_fingerprint, dataset_info,
                       dataset_names, register)

# importing the builders fills the registry
from . import cifar, digits, folders  # noqa: E402,F401

__all__ = ["DataBundle", "DATASET_BUILDERS", "DATASET_INFO", "DatasetInfo", "build_datasets", "data_fingerprint",
           "dataset_info", "dataset_names", "register", "transforms"]
