"""Training on few rows: the splits the trainer and the estimator make, sized to the data.

The trainer holds out ``holdout_fraction`` of the rows when there is no
validation channel, and an estimator with early stopping
(HistGradientBoosting*, GradientBoosting* with ``n_iter_no_change``, SGD* and
MLP* with ``early_stopping``) splits off its own ``validation_fraction`` of
what remains.  A stratified split needs at least one row of every class on
each side, and every class twice.  Where the rows are too few for the
estimator's split and early stopping is the trainer's own default, it is
turned off (the log says so); where the user asked for it, or the rows are
too few even for the hold-out, the job fails with the minimum.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from sklearn_byoc.common.errors import UserError

log = logging.getLogger("train")


def holdout_rows_needed(fraction: float) -> int:
    """The fewest rows from which the hold-out keeps one row and leaves two to fit."""
    n = 2
    while round(n * fraction) < 1 or n - round(n * fraction) < 2:
        n += 1
    return n


def holdout(X: pd.DataFrame, y: pd.Series, task: str, fraction: float, seed: int):
    from sklearn.model_selection import train_test_split

    n_holdout = int(round(len(y) * fraction))
    if n_holdout < 1 or len(y) - n_holdout < 2:
        raise UserError(
            f"only {len(y)} training row(s): holding out a holdout_fraction of {fraction} "
            f"needs at least {holdout_rows_needed(fraction)} rows (one held out, two to fit); "
            "add rows or give a 'validation' channel"
        )
    stratify = None
    if task == "classification":
        # Integer codes in sorted label order: the same classes, in the same order, as
        # the labels themselves, without sorting a million Python strings.
        codes, levels = pd.factorize(y, sort=True)
        counts = np.bincount(codes, minlength=len(levels))
        if counts.min() >= 2 and n_holdout >= len(levels) and len(y) - n_holdout >= len(levels):
            stratify = codes
        else:
            log.warning("hold-out split is not stratified: some classes are too rare")
    return train_test_split(X, y, test_size=n_holdout, random_state=seed, stratify=stratify)


def _split_sizes(n: int, fraction: float | int) -> tuple[int, int]:
    """(held out, kept) rows of scikit-learn's train_test_split(test_size=fraction)."""
    held = int(fraction) if isinstance(fraction, int) else math.ceil(fraction * n)
    return held, n - held


def rows_needed(fraction: float | int, n_classes: int) -> int:
    """The fewest rows whose split holds ``n_classes`` rows (at least one) on each side."""
    least = max(1, n_classes)
    n = 1
    while True:
        held, kept = _split_sizes(n, fraction)
        if held >= least and kept >= least:
            return n
        n += 1


def _early_stopping(estimator, n_rows: int) -> tuple[str, Any, Any] | None:
    """(the parameter that turns it on, the value that turns it off, validation_fraction)
    when ``estimator`` will split its training rows for early stopping."""
    params = estimator.get_params()
    fraction = params.get("validation_fraction")
    if fraction is None:
        return None
    switch = params.get("early_stopping", None)
    if "early_stopping" in params:
        # HistGradientBoosting's "auto" turns it on above 10,000 rows.
        on = switch is True or (switch == "auto" and n_rows > 10_000)
        return ("early_stopping", False, fraction) if on else None
    if params.get("n_iter_no_change") is not None:  # GradientBoosting*
        return "n_iter_no_change", None, fraction
    return None


def fit_to_size(estimator, X: pd.DataFrame, y: pd.Series, task: str, settings) -> dict:
    """Parameters changed so that ``estimator`` can fit these rows (applied to it)."""
    changed: dict[str, Any] = {}
    n = len(y)
    early = _early_stopping(estimator, n)
    if early is not None:
        param, off, fraction = early
        counts = y.value_counts() if task == "classification" else None
        k = len(counts) if counts is not None else 0
        held, kept = _split_sizes(n, fraction)
        too_few = held < max(1, k) or kept < max(1, k)
        rare = counts is not None and counts.min() < 2
        if too_few or rare:
            need = rows_needed(fraction, k)
            why = (f"its validation split (validation_fraction={fraction}) needs at least "
                   f"{need} rows" + (f" for {k} classes" if k else "")
                   + (" and every class twice" if rare else ""))
            if param in settings.given:
                raise UserError(
                    f"hyperparameter {param!r} turns on early stopping, but {why}, and "
                    f"there are {n} training rows; set {param}={off} or add rows"
                )
            log.info("early stopping off: %s, and there are %d training rows", why, n)
            changed[param] = off
    neighbours = estimator.get_params().get("n_neighbors")
    if isinstance(neighbours, int) and neighbours > n:
        if "n_neighbors" in settings.given:
            raise UserError(
                f"hyperparameter 'n_neighbors' is {neighbours}, but there are only {n} "
                f"training rows; set n_neighbors to {n} or less, or add rows"
            )
        log.info("n_neighbors lowered from %d to %d: there are %d training rows",
                 neighbours, n, n)
        changed["n_neighbors"] = n
    if changed:
        estimator.set_params(**changed)
    return changed
