"""The numpy tree walk against scikit-learn's predict_proba, by request size.

    .venv/bin/python benchmarks/fast_trees.py [--rounds 5]

Each built-in tree model as the trainer fits it (the trainer's defaults, on iris and
on the bundled churn data's numeric columns), one thread as serve runs it; for each
request size the two are timed alternately, the median of the rounds printed.  The
size where the walk stops winning is what ``SMALL_ROWS`` in
sklearn_byoc/serve/fast_trees.py is set from.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (1, 4, 16, 64, 256, 1024)


def models():
    from sklearn.datasets import load_iris
    from sklearn.ensemble import (ExtraTreesClassifier, HistGradientBoostingClassifier,
                                  RandomForestClassifier)
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    rng = np.random.default_rng(0)
    big = np.vstack([X] * 8) + rng.normal(0, 0.05, (len(X) * 8, X.shape[1]))
    return big, [
        ("decision_tree", DecisionTreeClassifier(random_state=0).fit(X, y)),
        ("random_forest", RandomForestClassifier(random_state=0, n_jobs=1).fit(X, y)),
        ("extra_trees", ExtraTreesClassifier(random_state=0, n_jobs=1).fit(X, y)),
        ("gradient_boosting", HistGradientBoostingClassifier(
            early_stopping=True, random_state=0).fit(X, y)),
    ]


def timed(fn, X, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        fn(X)
    return (time.perf_counter() - started) / repeat


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from sklearn_byoc.serve.fast_trees import compile_trees

    X, fitted = models()
    print("| model | rows | scikit-learn ms | numpy walk ms | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with threadpool_limits(1):
        for name, model in fitted:
            fast = compile_trees(model)
            if fast is None:
                print(f"| {name} | | not compiled | | |")
                continue
            for size in SIZES:
                rows = X[:size]
                repeat = max(3, 2000 // size)
                ours, theirs = [], []
                for _ in range(args.rounds):
                    theirs.append(timed(model.predict_proba, rows, repeat))
                    ours.append(timed(fast.predict_proba, rows, repeat))
                a, b = statistics.median(theirs), statistics.median(ours)
                print(f"| {name} | {size:,} | {a * 1e3:.3f} | {b * 1e3:.3f} | {a / b:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
