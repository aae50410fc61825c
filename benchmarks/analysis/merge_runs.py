"""Merge the runs files of one grid that ran as several jobs (split by seeds or budgets) into one runs file.

Each input is ``PATH`` or ``PATH:SEEDS``: keep only those seeds (SEEDS as ``--seeds`` takes them: a range
``3-4``, a list ``0,1,2``), e.g. the seeds a job ran before it was stopped so that another job could take the
rest. A run is one (method, budget, seed, protocol); the same run in two inputs is an error unless the rows are
equal, so no result is silently chosen over another. The output keeps the inputs' row order and columns.

Example (the CIFAR-10 grid at 50,000 rows, then its tables from the grid's own command: nothing left to run)::

    python benchmarks/analysis/merge_runs.py benchmarks/results/cifar10_50k_finetune_runs.csv \\
        D_runs.csv E_runs.csv F_runs.csv:0-2 G_runs.csv H_runs.csv:3-4
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from bilaf.bench import parse_seeds


def parse_input(spec: str) -> Tuple[Path, Optional[Set[int]]]:
    """``PATH`` or ``PATH:SEEDS`` -> (path, seeds to keep or None for all); SEEDS as ``--seeds`` takes them."""
    path, sep, seeds = spec.rpartition(":")
    if not sep or not seeds or not all(c.isdigit() or c in ",-" for c in seeds):
        return Path(spec), None
    return Path(path), set(parse_seeds(seeds))


def merge(inputs: Sequence[str]) -> Tuple[List[str], List[Dict[str, str]]]:
    """The merged header and rows of ``inputs`` (see the module docstring)."""
    header: List[str] = []
    rows: List[Dict[str, str]] = []
    seen: Dict[Tuple[str, str, str, str], Dict[str, str]] = {}
    for spec in inputs:
        path, keep = parse_input(spec)
        if not path.is_file():
            raise SystemExit(f"merge_runs: no runs file {path}")
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            if not {"method", "budget", "seed", "protocol"} <= set(fields):
                raise SystemExit(f"merge_runs: {path} is not a runs file (no method, budget, seed, protocol columns)")
            header += [f for f in fields if f not in header]
            for row in reader:
                if keep is not None and int(row["seed"]) not in keep:
                    continue
                key = (row["method"], row["budget"], row["seed"], row["protocol"])
                if key in seen:
                    if seen[key] != row:
                        raise SystemExit(f"merge_runs: {path} has another result for {key}")
                    continue
                seen[key] = row
                rows.append(row)
    return header, rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the merged runs file to write")
    p.add_argument("inputs", nargs="+", help="runs files, each PATH or PATH:SEEDS")
    args = p.parse_args(argv)
    header, rows = merge(args.inputs)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n", restval="")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out)
    print(f"{out}: {len(rows)} runs from {len(args.inputs)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
