"""Datasets for training and evaluating generators (and the mIoU segmenter).

    from compress.data import build_dataset, make_dataloader, holdout_split
    ds = build_dataset("labelmap", ".../facades/256", "train", palette="facades",
                       load_size=286, crop_size=256, flip=True)
    item = ds[0]   # {"A": input, "B": photo, "label": ids, "A_path", "B_path"}

Modes, item keys and transform semantics: see ``compress.data.datasets``; file reading:
``compress.data.images``; paired transforms and encodings: ``compress.data.transforms``.
"""
from compress.data.datasets import (DIRECTIONS, MODES, AlignedDataset, CityscapesDataset, LabelMapDataset,
                                    SingleDataset, UnalignedDataset, build_dataset, default_input_kind,
                                    guess_mode, holdout_split)
from compress.data.loader import EpochSampler, make_dataloader
from compress.data.transforms import INPUT_ENCODINGS, instance_edges, label_tensor, photo_tensor

__all__ = ["build_dataset", "default_input_kind", "make_dataloader", "holdout_split", "guess_mode",
           "EpochSampler", "MODES", "DIRECTIONS", "INPUT_ENCODINGS", "LabelMapDataset", "AlignedDataset",
           "UnalignedDataset", "CityscapesDataset", "SingleDataset", "instance_edges", "label_tensor",
           "photo_tensor"]
