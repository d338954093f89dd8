"""LOFT: low-rank orthogonal fine-tuning via task-aware support selection (Han et al. 2026).

W+ = W0 (I + P^T (T - I) P): a rank-r support P (r x n, orthonormal rows; support.py) and an
r x r orthogonal transform T (transforms.py) inside it; LoftOrthLinear (layer.py) runs it at
LoRA cost; apply/calibrate/save_adapter/load_adapter (model.py) handle whole models.
"""
from .config import LoftOrthConfig
from .layer import LoftOrthLinear, weight_out_in
from .model import (adapted_layers, apply, calibrate, find_targets, load_adapter, merge_and_unload,
                    num_adapter_parameters, save_adapter)
from .support import GRADIENT_SUPPORTS, REQUIRES_GRADIENT, SUPPORTS, GradSketch, haar_support, select_support, subspace_distance
from .transforms import TRANSFORMS, build_transform

__all__ = ["LoftOrthConfig", "LoftOrthLinear", "GradSketch", "GRADIENT_SUPPORTS", "REQUIRES_GRADIENT", "SUPPORTS", "TRANSFORMS", "adapted_layers", "apply",
           "build_transform", "calibrate", "find_targets", "haar_support", "load_adapter", "merge_and_unload",
           "num_adapter_parameters", "save_adapter", "select_support", "subspace_distance",
           "weight_out_in"]
