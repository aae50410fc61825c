"""The comparison harness: selection methods x budgets x seeds -> accuracy table and plot.

Every method sees the same pool, the same test set, the same budgets and the
same seeds; each (method, budget, seed) selection is made once with
:func:`bilaf.select` and then scored by every requested protocol
(:mod:`bilaf.evaluation`). A method that fails is recorded (with its error)
and the run goes on. Outputs are written atomically::

    from bilaf.bench import run_bench
    res = run_bench(X, y, X_test, y_test, methods=["random", "bilaf", "bilaf:n_cores=50"],
                    budgets=["1%", "2%"], seeds=5, protocols=["linear", "knn"])
    print(res.to_markdown())
    res.write("results", "cifar10")   # cifar10.md, cifar10.csv, cifar10_runs.csv, cifar10.png

Three modules, one job each: :mod:`~bilaf.bench.spec` parses what to run
(method specs, budgets, seeds), :mod:`~bilaf.bench.run` runs the grid, and
:mod:`~bilaf.bench.report` holds the result and renders it (Markdown, CSV,
plot) and reads a runs file back. Their public names are importable from here.
"""

from .report import PROTOCOL_TITLES, RUN_FIELDS, SUMMARY_FIELDS, BenchResult, read_runs_csv
from .run import code_version, run_bench
from .spec import Budget, MethodSpec, parse_budgets, parse_method_spec, parse_methods, parse_seeds

__all__ = ["MethodSpec", "Budget", "BenchResult", "parse_methods", "parse_method_spec", "parse_budgets",
           "parse_seeds", "run_bench", "read_runs_csv", "code_version", "RUN_FIELDS", "SUMMARY_FIELDS",
           "PROTOCOL_TITLES"]
