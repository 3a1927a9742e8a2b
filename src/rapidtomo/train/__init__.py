"""Training the RAPID network: patch pairs and the train/held-out split, NPCC loss, polynomial
learning-rate schedule, the training loop with checkpoints, resume and torchrun data parallelism."""
from .data import PatchPairs, prepare_pairs, resample_z
from .loop import TrainSettings, checkpoint_path, log_paths, train
from .loss import npcc, poly_lr
from .split import heldout_region, patch_starts, split_index, validation_index

__all__ = ["TrainSettings", "train", "npcc", "poly_lr", "heldout_region", "patch_starts", "split_index",
           "validation_index", "prepare_pairs", "PatchPairs", "resample_z", "checkpoint_path", "log_paths"]
