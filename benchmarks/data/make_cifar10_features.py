"""Wrap ../shared's CIFAR-10 EfficientNet-Lite0 features as the feature files `bilaf embed` would write.

    python benchmarks/data/make_cifar10_features.py ../shared/data/cifar10 --out /tmp/bilaf-c10
    -> OUT/cifar10_train.npz, OUT/cifar10_test.npz (ids = archive paths, labels, classes, and the metadata the
       finetune protocol reads: backbone efficientnet_lite0, source tar:<archive>[split])

The shared features were made exactly as `bilaf embed cifar10-jpg.tar.gz --split train` makes them (same
backbone, preprocessing and row order: docs/embed.md); wrapping them saves re-embedding 60,000 images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cifar10", help="../shared/data/cifar10 (cifar10-jpg.tar.gz and effnet-lite0/)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    from bilaf.features import FeatureSet

    root = Path(args.cifar10).resolve()
    feats = root / "effnet-lite0"
    archive = root / "cifar10-jpg.tar.gz"
    classes = (feats / "classes.txt").read_text().split()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        fs = FeatureSet(features=np.load(feats / f"{split}_features.npy"),
                        ids=(feats / f"{split}_files.txt").read_text().split(),
                        labels=np.load(feats / f"{split}_labels.npy").astype(np.int64), classes=classes,
                        meta={"backbone": "efficientnet_lite0", "kind": "image", "dim": 1280,
                              "source": f"tar:{archive}[{split}]"})
        fs.save(out / f"cifar10_{split}.npz")
        print(split, fs.features.shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
