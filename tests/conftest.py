import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "fixtures" / "reference"


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_script(name: str, results: Path, monkeypatch) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (``name`` relative to benchmarks/, e.g. ``"analysis/paired_report"``; not a
    package) with its RESULTS folder pointed at ``results``."""
    spec = importlib.util.spec_from_file_location(Path(name).name, BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", results)
    return mod


def reference_files():
    return sorted(REFERENCE.glob("ref_*.npz"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


def blobs(n=300, d=8, k=6, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    y = rng.integers(0, k, size=n)
    return (centers[y] + spread * rng.normal(size=(n, d))).astype(np.float32), y
