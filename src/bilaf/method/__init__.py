"""BiLAF's stage 2 in the paper's words: assignment, denoising, budget split, boundary selection."""

from .assign import assign_to_cores
from .boundary import boundary_score, select_boundary
from .budget import split_budget
from .denoise import denoise

__all__ = ["assign_to_cores", "denoise", "split_budget", "boundary_score", "select_boundary"]
