"""bilaf: active finetuning. Choose, in one shot and without labels, the samples worth labeling.

The heart is BiLAF (Lu et al., 2024): core samples for diversity, then boundary
samples for uncertainty. Every baseline shares the same interface::

    import bilaf
    result = bilaf.select(X, budget=0.01, method="bilaf", random_state=0)
    result.indices            # pool indices to label, in selection order
"""

from .api import select
from .result import SelectionResult
from .selectors import METHODS, get_selector_class
from .selectors.activeft import ActiveFT
from .selectors.base import BaseSelector
from .selectors.bilaf import BiLAF
from .selectors.kcenter import KCenterGreedy
from .selectors.kmeans import KMeansSelector
from .selectors.random import RandomSelector

__version__ = "0.1.0"


def __getattr__(name: str):
    # baselines written in their own modules, imported on first use
    if name in ("TypiClust", "ProbCover", "MaxHerding"):
        return get_selector_class(name.lower())
    raise AttributeError(f"module 'bilaf' has no attribute {name!r}")


__all__ = ["select", "SelectionResult", "BiLAF", "ActiveFT", "KCenterGreedy", "KMeansSelector", "RandomSelector",
           "TypiClust", "ProbCover", "MaxHerding", "BaseSelector", "METHODS", "get_selector_class", "__version__"]
