"""The metric lines of a job on several hosts: each host sums what it can over its own
hold-out rows (confusion counts, squared and absolute errors, log loss, score histograms),
and the leader makes the same metrics one host prints from the sums (``common/metrics.py``).
AUC comes from per-class histograms of :data:`AUC_BINS` score bins, scores in one bin
counting as ties."""
from __future__ import annotations

import math

import numpy as np

AUC_BINS = 1000


def score_share(store: dict, pipeline, task: str, classes: list | None, split: str,
                limit: int | None, seed: int) -> dict:
    """Sums over this host's rows of one split from which the leader makes the metrics."""
    X, y = (store["X_val"], store["y_val"]) if split == "validation" else \
        (store["X_fit"], store["y_fit"])
    if limit is not None and len(X) > limit:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), limit, replace=False))
        X, y = X.iloc[rows], y.iloc[rows]
    if not len(X):
        return {"rows": 0}
    if task == "regression":
        truth = y.to_numpy(dtype=float)
        error = pipeline.predict(X).astype(float) - truth
        return {"rows": len(truth), "se": float(np.sum(error ** 2)),
                "ae": float(np.sum(np.abs(error))), "y": float(np.sum(truth)),
                "yy": float(np.sum(truth ** 2))}
    from sklearn_byoc.common.metrics import counts_matrix, label_codes

    k = len(classes)
    proba = pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba") else None
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if proba is not None \
        else pipeline.predict(X)
    true_codes, pred_codes = label_codes(y, predicted, classes)
    known = true_codes < k
    # One more row for the labels the model never saw (all of them: errors).
    counts = counts_matrix(np.minimum(true_codes, k), pred_codes, k + 1)
    out = {"rows": len(y), "counts": counts, "unknown": int((~known).sum())}
    if proba is not None:
        p_true = np.clip(proba[known, true_codes[known]], 1e-15, 1.0)
        out["log_loss"] = float(-np.sum(np.log(p_true)))
        bins = np.minimum((proba[known] * AUC_BINS).astype(np.int64), AUC_BINS - 1)
        # For class j: the score histograms of rows of class j and of the other rows.
        hist = np.zeros((k, 2, AUC_BINS), dtype=np.int64)
        for j in range(k):
            is_j = true_codes[known] == j
            hist[j, 0] = np.bincount(bins[is_j, j], minlength=AUC_BINS)
            hist[j, 1] = np.bincount(bins[~is_j, j], minlength=AUC_BINS)
        out["hist"] = hist
    return out


def _add(parts: list[dict]) -> dict:
    total: dict = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total[key] + value if key in total else value
    return total


def _auc(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """The area under the ROC curve from two score histograms (ties within a bin: half)."""
    n_pos, n_neg = positive.sum(), negative.sum()
    if not n_pos or not n_neg:
        return None
    below = np.cumsum(negative) - negative  # negatives in lower bins
    wins = float(np.sum(positive * below) + 0.5 * np.sum(positive * negative))
    return wins / (float(n_pos) * float(n_neg))


def combine_scores(parts: list[dict], task: str, classes: list | None) -> dict[str, float]:
    """The metric lines' values from every host's sums (the names one host prints)."""
    total = _add([p for p in parts if p.get("rows")])
    if not total.get("rows"):
        return {}
    n = total["rows"]
    if task == "regression":
        mse = total["se"] / n
        out = {"mse": mse, "rmse": math.sqrt(mse), "mae": total["ae"] / n}
        if n > 1:
            variance = total["yy"] - total["y"] ** 2 / n
            if variance > 0:
                out["r2"] = 1.0 - total["se"] / variance
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}
    from sklearn_byoc.common.metrics import line_scores

    k = len(classes)
    counts = total["counts"]
    out = line_scores(counts, k)
    support = counts.sum(axis=1)
    present = int((support > 0).sum())
    if "hist" in total and present > 1 and not total.get("unknown"):
        hist = total["hist"]
        if k == 2:
            auc = _auc(hist[1, 0], hist[1, 1])
        elif present == k:
            values = [_auc(hist[j, 0], hist[j, 1]) for j in range(k)]
            auc = float(np.mean(values)) if None not in values else None
        else:
            auc = None
        if auc is not None:
            out["auc"] = auc
        out["log_loss"] = total["log_loss"] / n
    return {k_: float(v) for k_, v in out.items() if math.isfinite(float(v))}
