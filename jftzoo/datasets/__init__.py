"""Multimodal sentiment datasets: readers, bad-record reports and reproducible splits."""

from jftzoo.datasets.records import BadDataError, Dataset, Problem, Record
from jftzoo.datasets.registry import DatasetSpec, dataset_specs, load_dataset
from jftzoo.datasets.splits import official_split, ratio_split, read_split, stratified_kfold, write_split

__all__ = [
    "BadDataError", "Dataset", "DatasetSpec", "Problem", "Record", "dataset_specs", "load_dataset",
    "official_split", "ratio_split", "read_split", "stratified_kfold", "write_split",
]
