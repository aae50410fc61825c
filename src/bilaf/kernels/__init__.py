"""Numeric kernels: chunked passes on numpy or torch, on the CPU or a GPU.

- :mod:`~bilaf.kernels.chunks`: row blocks sized by a memory budget.
- :mod:`~bilaf.kernels.distances`: Euclidean distance passes (nearest centres, within-group distances, ...).
- :mod:`~bilaf.kernels.scatter`: sums of weighted rows by group.
- :mod:`~bilaf.kernels.tensors`: devices, dtypes, arrays into torch and back.

The names below are those modules' public functions, gathered for callers that want one import.
"""

from .chunks import CPU_BLOCK_BYTES, DEFAULT_MEMORY_BUDGET, row_chunks
from .distances import (distances_to_point, knn_distances_within, mean_distances_within, nearest_centers,
                        nearest_distinct_samples, pairwise_distances, sq_norms, within_distance_matrix)
from .scatter import scatter_rows
from .tensors import resolve_device, to_numpy, to_tensor, torch_dtype

__all__ = [
    "CPU_BLOCK_BYTES",
    "DEFAULT_MEMORY_BUDGET",
    "row_chunks",
    "distances_to_point",
    "knn_distances_within",
    "mean_distances_within",
    "nearest_centers",
    "nearest_distinct_samples",
    "pairwise_distances",
    "sq_norms",
    "within_distance_matrix",
    "scatter_rows",
    "resolve_device",
    "to_numpy",
    "to_tensor",
    "torch_dtype",
]
