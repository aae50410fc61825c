"""Full finetuning of a torch backbone on the selected, labeled images."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Optional, Tuple

import numpy as np
import torch

from ..errors import ValidationError, ValidationTypeError
from ..kernels.tensors import resolve_device
from ..threads import thread_limited
from ..utils.progress import progress
from ..validation import check_positive_int, check_positive_number, check_random_state
from ._checks import check_labels

__all__ = ["finetune", "as_image_tensor", "random_resized_crop_flip", "FINETUNE_DEFAULTS"]

# The paper's recipe (DeiT-S/16 from DINO weights): SGD momentum 0.9, weight decay 1e-4, lr 3e-3, cosine schedule
# with 5 warm-up epochs, label smoothing 0.1, RandomResizedCrop + flip, gradient clipping 2.0, ~1000 steps.
FINETUNE_DEFAULTS = {"steps": 1000, "batch_size": 64, "lr": 3e-3, "momentum": 0.9, "weight_decay": 1e-4,
                     "warmup_epochs": 5, "label_smoothing": 0.1, "grad_clip": 2.0, "crop_scale": (0.35, 1.0)}


def as_image_tensor(images: Any, *, name: str = "images") -> torch.Tensor:
    """Images as a float tensor (N, C, H, W).

    Accepts a tensor or array of shape (N, C, H, W) with C in {1, 3}, (N, H, W, C)
    with C in {1, 3}, or (N, H, W) (grayscale). Integer images (uint8) are scaled
    to [0, 1]; floating images are kept as they are.
    """
    if isinstance(images, torch.Tensor):
        t = images.detach()
    else:
        arr = np.asarray(images)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise ValidationTypeError(f"{name} must be a numeric image array, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.bool:
        raise ValidationTypeError(f"{name} must be a numeric image array, got dtype bool")
    integer = not torch.is_floating_point(t)
    t = t.to(torch.float32)
    if integer:
        t = t / 255.0
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif t.dim() == 4:
        if t.shape[1] not in (1, 3) and t.shape[-1] in (1, 3):
            t = t.permute(0, 3, 1, 2)
        elif t.shape[1] not in (1, 3):
            raise ValidationError(f"{name} must have 1 or 3 channels (N, C, H, W or N, H, W, C), got shape "
                             f"{tuple(t.shape)}")
    else:
        raise ValidationError(f"{name} must be (N, C, H, W), (N, H, W, C) or (N, H, W), got shape {tuple(t.shape)}")
    if t.shape[0] < 1:
        raise ValidationError(f"{name} is empty")
    if not bool(torch.isfinite(t).all()):
        raise ValidationError(f"{name} contains NaN or inf values")
    return t.contiguous()


def random_resized_crop_flip(x: torch.Tensor, generator: torch.Generator, *,
                             scale: Tuple[float, float] = (0.35, 1.0), ratio: Tuple[float, float] = (3 / 4, 4 / 3),
                             flip: bool = True) -> torch.Tensor:
    """RandomResizedCrop + horizontal flip on a batch, as one affine resampling (no torchvision).

    Each image gets a crop of ``scale`` of its area and aspect ratio in
    ``ratio`` (log-uniform), at a uniform position, resized back to the input
    size (bilinear), and is mirrored with probability 1/2 when ``flip``.
    """
    n = x.shape[0]
    cpu = dict(generator=generator, device="cpu")
    area = torch.empty(n).uniform_(scale[0], scale[1], generator=generator)
    logr = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    r = torch.exp(logr)
    w = torch.sqrt(area * r).clamp(max=1.0)
    h = torch.sqrt(area / r).clamp(max=1.0)
    tx = (torch.rand(n, **cpu) * 2 - 1) * (1 - w)
    ty = (torch.rand(n, **cpu) * 2 - 1) * (1 - h)
    sign = torch.where(torch.rand(n, **cpu) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = ty
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class _Classifier(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module, head: torch.nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x)
        return self.head(f.flatten(1))


def _copy_module(module: torch.nn.Module) -> torch.nn.Module:
    """A trainable deep copy (a copied TorchScript module has non-leaf parameters: make them leaves again)."""
    net = copy.deepcopy(module)
    for p in net.parameters():
        if not p.is_leaf:
            p.detach_().requires_grad_(True)
    return net


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


@thread_limited
def finetune(backbone: torch.nn.Module, train_images: Any, train_y: Any, test_images: Any, test_y: Any, *,
             n_classes: Optional[int] = None, steps: int = FINETUNE_DEFAULTS["steps"],
             batch_size: int = FINETUNE_DEFAULTS["batch_size"], lr: float = FINETUNE_DEFAULTS["lr"],
             momentum: float = FINETUNE_DEFAULTS["momentum"], weight_decay: float = FINETUNE_DEFAULTS["weight_decay"],
             warmup_epochs: float = FINETUNE_DEFAULTS["warmup_epochs"],
             label_smoothing: float = FINETUNE_DEFAULTS["label_smoothing"],
             grad_clip: Optional[float] = FINETUNE_DEFAULTS["grad_clip"], augment: bool = True,
             crop_scale: Tuple[float, float] = FINETUNE_DEFAULTS["crop_scale"],
             transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, eval_batch_size: int = 256,
             device: str = "cpu", random_state: Any = None, verbose: bool = False, return_model: bool = False):
    """Accuracy after finetuning every layer of ``backbone`` (plus a new linear head) on labeled images.

    The defaults are the BiLAF paper's recipe (SGD with momentum 0.9, weight
    decay 1e-4, lr 3e-3, linear warm-up for 5 epochs then cosine decay, label
    smoothing 0.1, random-resized-crop + flip, gradient clipping at 2.0, 1000
    steps); on a CPU pass tiny settings (``steps=50``, a small backbone).

    Parameters
    ----------
    backbone : torch.nn.Module
        Maps a batch of images (B, C, H, W), after ``transform``, to features
        (B, d) (or (B, ...), flattened). It is deep-copied: the caller's module
        is left untouched.
    train_images : tensor or array, (N, C, H, W), (N, H, W, C) or (N, H, W)
        The selected images; uint8 images are scaled to [0, 1].
    train_y : array-like of int, shape (N,)
    test_images, test_y
        The test set, in the same layouts.
    n_classes : int or None
        Width of the new head; default ``max(train_y, test_y) + 1``.
    steps : int, default=1000
        Optimiser steps.
    batch_size : int, default=64
        Per step (at most the number of training images); batches are drawn
        epoch by epoch from seeded permutations.
    lr, momentum, weight_decay : float
        SGD settings.
    warmup_epochs : float, default=5
        Linear warm-up length in epochs over the training images (capped at a
        tenth of ``steps``); then cosine decay to 0.
    label_smoothing : float, default=0.1
    grad_clip : float or None, default=2.0
        Clip the global gradient norm; ``None`` switches clipping off.
    augment : bool, default=True
        Random-resized crop (``crop_scale`` of the area) and horizontal flip.
    transform : callable or None
        Applied to every batch after augmentation (train and test), e.g. resize
        to the backbone's input size and normalise.
    eval_batch_size : int, default=256
    device : {"cpu", "cuda", "auto"}
    random_state : None, int or Generator
        Seeds the head's initialisation, the batches and the augmentation.
    verbose : bool
        Progress bar over the steps.
    return_model : bool
        Also return the finetuned classifier (backbone + head).

    Returns
    -------
    accuracy : float
        Test accuracy of the final model (the paper reports the best test
        accuracy over training, which is optimistic; we report the last).
    model : torch.nn.Module
        Only when ``return_model``.
    """
    if not isinstance(backbone, torch.nn.Module):
        raise ValidationTypeError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}")
    Xtr = as_image_tensor(train_images, name="train_images")
    Xte = as_image_tensor(test_images, name="test_images")
    ytr = check_labels(train_y, Xtr.shape[0], name="train_y", rows_name="train images")
    yte = check_labels(test_y, Xte.shape[0], name="test_y", rows_name="test images")
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValidationError(f"train images are {tuple(Xtr.shape[1:])} but test images are {tuple(Xte.shape[1:])}")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
    for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay),
                    ("warmup_epochs", warmup_epochs), ("label_smoothing", label_smoothing)):
        check_positive_number(v, name, allow_zero=True)
    if grad_clip is not None:
        check_positive_number(grad_clip, "grad_clip")
    top = int(max(ytr.max(), yte.max())) + 1
    if n_classes is None:
        n_classes = top
    n_classes = check_positive_int(n_classes, "n_classes")
    if n_classes < top:
        raise ValidationError(f"n_classes={n_classes} but the labels go up to {top - 1}")

    rng = check_random_state(random_state)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    dev = resolve_device(device)
    tf = transform if transform is not None else (lambda t: t)

    net = _copy_module(backbone).to(dev)
    net.eval()
    with torch.no_grad():
        d = int(net(tf(Xtr[:1].to(dev))).flatten(1).shape[1])
    head = torch.nn.Linear(d, n_classes)
    with torch.no_grad():
        head.weight.copy_(torch.randn(n_classes, d, generator=gen) * 0.01)
        head.bias.zero_()
    model = _Classifier(net, head.to(dev))

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": float(weight_decay)},
                           {"params": no_decay, "weight_decay": 0.0}], lr=float(lr), momentum=float(momentum))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=float(label_smoothing))
    n = Xtr.shape[0]
    bs = min(batch_size, n)
    per_epoch = max(1, n // bs)
    warmup = int(min(round(float(warmup_epochs) * per_epoch), steps // 10))
    ytr_t = torch.as_tensor(ytr)

    model.train()
    perm = torch.randperm(n, generator=gen)
    pos = 0
    for step in progress(range(steps), desc="finetune", enabled=verbose, unit="step"):
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        rows = perm[pos:pos + bs]
        pos += bs
        xb = Xtr[rows]
        if augment:
            xb = random_resized_crop_flip(xb, gen, scale=tuple(crop_scale))
        xb = tf(xb.to(dev))
        yb = ytr_t[rows].to(dev)
        for g in opt.param_groups:
            g["lr"] = float(lr) * _lr_factor(step, steps, warmup)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"finetuning diverged at step {step} (loss {float(loss)}); lower lr")
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, float(grad_clip))
        opt.step()

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, Xte.shape[0], eval_batch_size):
            xb = tf(Xte[start:start + eval_batch_size].to(dev))
            pred = model(xb).argmax(dim=1).cpu().numpy()
            correct += int((pred == yte[start:start + eval_batch_size]).sum())
    acc = correct / Xte.shape[0]
    return (acc, model) if return_model else acc
