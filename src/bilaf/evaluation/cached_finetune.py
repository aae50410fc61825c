"""Finetuning on a CPU budget: the top of the backbone and a new head train on cached activations.

A full finetuning step of EfficientNet-Lite0 or MiniLM costs about a second
of one CPU core, so a grid of selections x budgets x seeds is out of reach on
a CPU. :class:`CachedFinetuner` runs the frozen bottom of the backbone
(:mod:`bilaf.evaluation.trunks`) once per sample, caches its activations, and
for every selection trains a fresh copy of the top blocks plus a new linear
head on the cached activations of the labeled samples, then scores the test
set. Full-network finetuning with augmentation stays in
:func:`bilaf.evaluation.finetune` (for a GPU).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..errors import ValidationError
from ..validation import check_random_state
from ._checks import check_labels
from .trunks import Trunk

__all__ = ["FinetuneRecipe", "RECIPES", "ActivationCache", "CachedFinetuner", "finetuner_for"]


@dataclass(frozen=True)
class FinetuneRecipe:
    """Training settings of :class:`CachedFinetuner`.

    Attributes
    ----------
    optimizer : {"adamw", "sgd"}
        AdamW (betas 0.9 / 0.999) or SGD with momentum 0.9.
    lr : float
        Peak learning rate of the top; the new head uses ``lr * head_lr_scale``.
    head_lr_scale : float
    weight_decay : float
        On weights (not on biases and norms).
    batch_size : int
        Per step (at most the number of labeled samples).
    epochs : float
        Passes over the labeled samples; the step count is
        ``epochs * n / batch_size`` clipped to ``[min_steps, max_steps]``.
    min_steps, max_steps : int
    warmup : float
        Fraction of the steps with a linear warm-up; then cosine decay to 0.
    label_smoothing : float
    grad_clip : float or None
        Clip the global gradient norm.
    flip : bool
        Mirror half of each image batch (on the cached map, images only).
    """

    optimizer: str = "adamw"
    lr: float = 1e-4
    head_lr_scale: float = 10.0
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: float = 20.0
    min_steps: int = 60
    max_steps: int = 400
    warmup: float = 0.1
    label_smoothing: float = 0.1
    grad_clip: Optional[float] = 2.0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValidationError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        for name in ("lr", "head_lr_scale", "epochs"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValidationError(f"{name} must be a positive number, got {v!r}")
        for name in ("weight_decay", "warmup", "label_smoothing"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValidationError(f"{name} must be a non-negative number, got {v!r}")
        if not (1 <= self.min_steps <= self.max_steps) or self.batch_size < 1:
            raise ValidationError("need 1 <= min_steps <= max_steps and batch_size >= 1")

    def steps(self, n: int) -> int:
        """Optimiser steps for ``n`` labeled samples."""
        bs = min(self.batch_size, n)
        return int(min(self.max_steps, max(self.min_steps, round(self.epochs * n / bs))))

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


# The recipes the benchmarks use, one per modality, fixed on a validation split of the pool before any
# method was compared (benchmarks/finetune_recipe.py; benchmarks/results/finetune_recipe_trec6.md and
# finetune_recipe_cifar10*.md).
RECIPES: Dict[str, FinetuneRecipe] = {
    "text": FinetuneRecipe(optimizer="adamw", lr=1e-4, head_lr_scale=10.0, weight_decay=0.01, batch_size=32,
                           max_steps=200),
    "image": FinetuneRecipe(optimizer="sgd", lr=3e-4, head_lr_scale=10.0, weight_decay=1e-4, batch_size=64,
                            flip=True),
}


class ActivationCache:
    """Bottom activations of a sample set, computed on first use and kept (float16).

    Parameters
    ----------
    trunk : Trunk
    load : callable
        ``load(rows) -> list`` of raw samples (encoded images or texts) for an
        int array of row numbers.
    n : int
        Number of rows in the set.
    name : str
        For progress messages.
    verbose : bool
    """

    def __init__(self, trunk: Trunk, load: Callable[[np.ndarray], List[Any]], n: int, name: str = "pool",
                 verbose: bool = False, chunk: int = 4096) -> None:
        self.trunk = trunk
        self.load = load
        self.n = int(n)
        self.name = name
        self.verbose = verbose
        self.chunk = int(chunk)
        self._acts: Dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._acts)

    def get(self, rows: Sequence[int]) -> List[np.ndarray]:
        """Activations of ``rows`` (computing the missing ones in chunks)."""
        rows = [int(r) for r in rows]
        bad = [r for r in rows if not 0 <= r < self.n]
        if bad:
            raise IndexError(f"row {bad[0]} outside the {self.n} rows of the {self.name}")
        missing = sorted(set(r for r in rows if r not in self._acts))
        if missing and self.verbose:
            print(f"finetune: caching {len(missing)} {self.name} samples through the frozen bottom",
                  file=sys.stderr, flush=True)
        for start in range(0, len(missing), self.chunk):
            part = np.asarray(missing[start:start + self.chunk], dtype=np.int64)
            samples = self.load(part)
            if len(samples) != len(part):
                raise RuntimeError(f"the {self.name} loader returned {len(samples)} samples for {len(part)} rows")
            for r, a in zip(part.tolist(), self.trunk.bottom(samples)):
                self._acts[r] = a
        return [self._acts[r] for r in rows]


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


class CachedFinetuner:
    """Accuracy of the backbone's top + a new head finetuned on labeled pool rows.

    Parameters
    ----------
    trunk : Trunk
        The split backbone (:func:`bilaf.evaluation.trunks.load_trunk`).
    load_pool : callable
        ``load_pool(rows) -> list`` of raw pool samples.
    n_pool : int
    load_test : callable
        ``load_test(rows) -> list`` of raw test samples.
    test_y : array-like of int
        Test labels.
    n_classes : int
        Width of the head.
    recipe : FinetuneRecipe or None
        Default: ``RECIPES[trunk.kind]``.
    verbose : bool
        Progress messages on stderr.
    """

    def __init__(self, trunk: Trunk, load_pool: Callable[[np.ndarray], List[Any]], n_pool: int,
                 load_test: Callable[[np.ndarray], List[Any]], test_y: Any, n_classes: int, *,
                 recipe: Optional[FinetuneRecipe] = None, verbose: bool = False, eval_batch_size: int = 256) -> None:
        self.trunk = trunk
        self.test_y = check_labels(test_y, len(test_y), name="test labels", rows_name="test rows")
        self.n_classes = int(n_classes)
        if self.n_classes <= int(self.test_y.max()):
            raise ValidationError(f"n_classes={n_classes} but the test labels go up to {int(self.test_y.max())}")
        self.recipe = recipe if recipe is not None else RECIPES[trunk.kind]
        self.pool = ActivationCache(trunk, load_pool, n_pool, "pool", verbose)
        self.test = ActivationCache(trunk, load_test, len(self.test_y), "test", verbose)
        self.verbose = verbose
        self.eval_batch_size = int(eval_batch_size)

    def describe(self) -> Dict[str, Any]:
        """What is trained and how (for tables and manifests)."""
        return {"trunk": self.trunk.describe(), **self.recipe.as_dict()}

    def __call__(self, rows: Any, y: Any, random_state: Any = None) -> float:
        return self.score(rows, y, random_state=random_state)

    def score(self, rows: Any, y: Any, random_state: Any = None) -> float:
        """Train on pool ``rows`` with labels ``y``; return the test accuracy in [0, 1].

        The head's initialisation, the batches and the flips are seeded by
        ``random_state``; the same seed gives the same accuracy.
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        y = check_labels(y, rows.shape[0], name="labels of the selected rows", rows_name="selected rows")
        if rows.shape[0] < 1:
            raise ValidationError("no labeled rows to finetune on")
        if int(y.max()) >= self.n_classes:
            raise ValidationError(f"label {int(y.max())} outside the {self.n_classes} classes")
        rng = check_random_state(random_state)
        seed = int(rng.integers(0, 2**62))
        gen = torch.Generator().manual_seed(seed)
        flips = np.random.default_rng(seed)
        acts = self.pool.get(rows)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # dropout inside the top, if any
            top = self.trunk.make_top()
            head = torch.nn.Linear(self.trunk.dim, self.n_classes)
            with torch.no_grad():
                head.weight.copy_(torch.randn(self.n_classes, self.trunk.dim, generator=gen) * 0.01)
                head.bias.zero_()
            self._train(top, head, acts, y, gen, flips)
            return self._evaluate(top, head)

    def _train(self, top: torch.nn.Module, head: torch.nn.Linear, acts: List[np.ndarray], y: np.ndarray,
               gen: torch.Generator, flips: np.random.Generator) -> None:
        r = self.recipe
        n = len(acts)
        bs = min(r.batch_size, n)
        steps = r.steps(n)
        warmup = int(round(r.warmup * steps))
        groups = []
        for module, scale in ((top, 1.0), (head, r.head_lr_scale)):
            params = [p for p in module.parameters() if p.requires_grad]
            groups.append({"params": [p for p in params if p.dim() > 1], "weight_decay": r.weight_decay,
                           "base_lr": r.lr * scale})
            groups.append({"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0,
                           "base_lr": r.lr * scale})
        groups = [g for g in groups if g["params"]]
        if r.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=r.lr, momentum=0.9)
        else:
            opt = torch.optim.AdamW(groups, lr=r.lr)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=r.label_smoothing)
        params = [p for g in groups for p in g["params"]]
        yt = torch.as_tensor(y)
        top.train()
        head.train()
        perm = torch.randperm(n, generator=gen)
        pos = 0
        for step in range(steps):
            if pos + bs > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos:pos + bs]
            pos += bs
            flip = flips.random(bs) < 0.5 if (r.flip and self.trunk.kind == "image") else None
            batch = self.trunk.collate([acts[i] for i in idx.tolist()], flip=flip)
            factor = _lr_factor(step, steps, warmup)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(head(top(batch)), yt[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"finetuning diverged at step {step} (loss {float(loss)}); lower the lr")
            loss.backward()
            if r.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, float(r.grad_clip))
            opt.step()

    def _evaluate(self, top: torch.nn.Module, head: torch.nn.Linear) -> float:
        top.eval()
        head.eval()
        n = len(self.test_y)
        correct = 0
        self.test.get(np.arange(n))  # cache every test row in one pass over the source
        with torch.no_grad():
            for start in range(0, n, self.eval_batch_size):
                rows = np.arange(start, min(n, start + self.eval_batch_size))
                pred = head(top(self.trunk.collate(self.test.get(rows)))).argmax(1).numpy()
                correct += int((pred == self.test_y[rows]).sum())
        return correct / n


def finetuner_for(pool: Any, test: Any, test_y: Any, n_classes: int, *, backbone: Optional[str] = None,
                  pool_source: Optional[str] = None, test_source: Optional[str] = None,
                  pool_rows: Optional[np.ndarray] = None, test_rows: Optional[np.ndarray] = None,
                  top: Optional[int] = None, image_size: Optional[int] = None,
                  recipe: Optional[FinetuneRecipe] = None, device: Any = "cpu",
                  verbose: bool = False) -> CachedFinetuner:
    """A :class:`CachedFinetuner` for two feature files made by ``bilaf embed``.

    Parameters
    ----------
    pool, test : FeatureSet
        The pool and test feature files; their ids name the samples, their
        ``meta["source"]`` the input and ``meta["backbone"]`` the backbone.
    test_y : array-like of int
        Labels of the test rows used (after ``test_rows``).
    n_classes : int
    backbone, pool_source, test_source : str or None
        Override what the metadata says (e.g. the data moved to another folder).
    pool_rows, test_rows : int arrays or None
        The file rows the bench uses, when it subsamples: bench row ``i`` is
        file row ``pool_rows[i]``.
    top : int or None
        Blocks (images) or layers (texts) in the trained top; the trunk's default when None.
    image_size : int or None
        Input side for image backbones (default 128).
    recipe : FinetuneRecipe or None
        Default: :data:`RECIPES` for the backbone's modality.
    device : str
        Where the frozen bottom runs.
    verbose : bool
    """
    from .raw_samples import SamplesNotFound, sample_loader
    from .trunks import TRUNKS, load_trunk

    name = backbone or (pool.meta or {}).get("backbone")
    if not name:
        raise ValidationError("the pool feature file does not name its backbone; pass --finetune-backbone")
    name = str(name)
    if name not in TRUNKS:
        raise ValidationError(f"cannot finetune backbone {name!r}: finetuning knows {', '.join(TRUNKS)}")
    kind = TRUNKS[name].kind
    tmeta = test.meta or {}
    if not backbone and tmeta.get("backbone") not in (None, name):
        raise ValidationError(f"the pool was embedded with {name} but the test set with {tmeta.get('backbone')}")
    options: Dict[str, Any] = {"device": device}
    if top is not None:
        options["top_blocks" if kind == "image" else "top_layers"] = int(top)
    if image_size is not None:
        if kind != "image":
            raise ValidationError("an image size applies to image backbones only")
        options["image_size"] = int(image_size)
    src_pool = pool_source or (pool.meta or {}).get("source")
    src_test = test_source or tmeta.get("source")
    loaders = {}
    for what, src, fs in (("pool", src_pool, pool), ("test", src_test, test)):
        if not src:
            raise ValidationError(f"the {what} feature file does not say which input it was made from; pass the "
                             f"{what} samples' folder, archive or text file")
        if not fs.ids or len(fs.ids) != len(fs):
            raise ValidationError(f"the {what} feature file has no ids, so its samples cannot be found")
        try:
            loaders[what] = sample_loader(src, list(fs.ids), kind)
        except SamplesNotFound as exc:
            raise SamplesNotFound(exc.path, what) from None
    load_pool, load_test = loaders["pool"], loaders["test"]
    if pool_rows is not None:
        pr = np.asarray(pool_rows, dtype=np.int64)
        base_pool = load_pool
        load_pool = lambda rows: base_pool(pr[np.asarray(rows, dtype=np.int64)])  # noqa: E731
    n_pool = len(pool) if pool_rows is None else len(pool_rows)
    if test_rows is not None:
        tr = np.asarray(test_rows, dtype=np.int64)
        base_test = load_test
        load_test = lambda rows: base_test(tr[np.asarray(rows, dtype=np.int64)])  # noqa: E731
    trunk = load_trunk(name, **options)
    return CachedFinetuner(trunk, load_pool, n_pool, load_test, test_y, n_classes, recipe=recipe, verbose=verbose)
