"""The leader's side of a training job on several hosts: the steps of ``distributed.py`` in
order, and the model, metrics and metadata written once, by the leader alone.

How each model uses the hosts:

- ``random_forest``, ``extra_trees``: every host fits its share of the trees on the rows it
  holds (shares in proportion to its rows); the leader merges them into one forest of
  ``n_estimators`` trees.  Each tree sees one host's rows, as a forest fitted on one
  machine sees a bootstrap sample of all of them.
- ``sgd`` and any estimator with ``partial_fit``: the model visits the hosts in turn for
  ``epochs`` passes; the rows stay where they are.
- every other model (``gradient_boosting``, the default, included): fitted on the leader on
  a uniform random sample of the rows of every host, as large as ``sample_rows`` says or
  as a quarter of the leader's memory budget holds.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.model_files import Column, Feature, ModelMetadata, library_versions
from sklearn_byoc.train import distributed as d, host_scores, shares
from sklearn_byoc.train.estimators import build_estimator, check_task
from sklearn_byoc.train.hyperparameters import Settings
from sklearn_byoc.train.trainer import (TRAIN_SCORE_ROWS, TrainingResult, _json_value, _sort_key,
                                        build_pipeline, check_objective, save_result,
                                        uses_native_categories)

log = logging.getLogger("train")


def fit_kind(settings: Settings, estimator) -> str:
    if settings.model.name in d.FOREST_MODELS:
        return "trees per host"
    if hasattr(estimator, "partial_fit"):
        return "partial_fit over the hosts"
    return "sample on the leader"


def train_on_hosts(paths: Paths, settings: Settings, hosts: d.Hosts, has_validation: bool,
                   budget: int | None) -> TrainingResult:
    """Fit on every host's rows and write the model on this host (the leader)."""
    started = time.monotonic()
    summaries = hosts.each(d.read_share, settings, has_validation)
    rows = {h: s.rows for h, s in summaries.items()}
    log.info("read the training data: %d rows on %d hosts (%s)", sum(rows.values()),
             len(rows), ", ".join(f"{h}: {n}" for h, n in rows.items()))
    plan = d.plan(summaries, settings, has_validation)
    first = next(s for s in summaries.values() if s.rows)
    objective = check_objective(settings, plan.task)
    prepared = hosts.each(d.prepare_share, plan)
    fit_rows = {h: p.fit_rows for h, p in prepared.items()}
    total = sum(fit_rows.values())
    log.info("%d rows to fit, %d held out for validation", total,
             sum(p.heldout_rows for p in prepared.values()))

    classes = None
    if plan.task == "classification":
        counts: dict = {}
        for p in prepared.values():
            for label, n in p.class_counts.items():
                counts[label] = counts.get(label, 0) + n
        classes = sorted(counts, key=_sort_key)
        if len(classes) < 2:
            raise UserError(f"the target column {plan.target!r} has a single class "
                            f"({classes[0]!r}) in the training data; classification needs at "
                            "least two (or set task=regression)")
    categories = {}
    for name, kind in plan.kinds.items():
        if kind == "categorical":
            levels = {v for p in prepared.values() for v in p.levels.get(name, [])}
            if any(p.missing.get(name) for p in prepared.values()):
                levels.add("missing")  # the imputer's fill value
            categories[name] = sorted(levels, key=str)

    estimator, params = build_estimator(settings.model, plan.task, settings)
    kind = fit_kind(settings, estimator)
    per_row = max(hosts.each(d.bytes_per_row).values())
    wanted = d.sample_size(total, per_row, budget, settings.sample_rows)
    if kind != "sample on the leader":
        wanted = min(wanted, max(d.MIN_SAMPLE_ROWS, min(total, 100_000)))
    share = wanted / total if total else 1.0
    parts = hosts.each(d.draw_sample, share, settings.seed)
    X_sample = pd.concat([X for X, _ in parts.values()])
    y_sample = pd.concat([y for _, y in parts.values()])
    log.info("sample of %d rows (%.1f%% of %d) drawn from every host for %s", len(X_sample),
             100.0 * len(X_sample) / max(total, 1), total,
             "the fit" if kind == "sample on the leader" else "the preprocessing's statistics")
    if plan.task == "classification":
        check_task(settings.model, plan.task, plan.target, y_sample)

    native = uses_native_categories(estimator, settings)
    pipeline = build_pipeline(estimator, X_sample, plan.model_kinds,
                              scale=settings.model.scale_numeric, native_categories=native,
                              sparse=settings.model.name == "linear", categories=categories)
    fit_started = time.monotonic()
    hosts_used = {"count": len(hosts.names), "rows": total, "fit": kind}
    if kind == "sample on the leader":
        pipeline.fit(X_sample, y_sample)
        hosts_used.update(sample_rows=len(X_sample),
                          sample_share=round(len(X_sample) / max(total, 1), 6))
    else:
        preprocess = pipeline.named_steps["preprocess"].fit(X_sample, y_sample)
        model = pipeline.named_steps["model"]
        del X_sample, y_sample
        if kind == "trees per host":
            n = int(model.get_params()["n_estimators"])
            trees = d.forest_shares(n, fit_rows)
            log.info("fitting %d trees: %s", n, ", ".join(f"{h}: {t}" for h, t in
                                                          trees.items()))
            fitted = hosts.each(d.fit_forest_share, preprocess, model, classes,
                                per_host={h: (trees[h], settings.seed + i)
                                          for i, h in enumerate(hosts.names)})
            model = d.merge_forests([fitted[h] for h in hosts.names], n)
            hosts_used["trees"] = trees
        else:
            epochs = settings.epochs
            progress = d.Progress("passes over a host's rows done:", epochs * len(hosts.names))
            for epoch in range(epochs):
                for host in hosts.names:
                    model = hosts.on(host, d.partial_fit_share, preprocess, model, classes,
                                     epoch, settings.seed)
                    progress.step()
            hosts_used["epochs"] = epochs
        pipeline.steps[-1] = ("model", model)
    log.info("fitted in %.2f s", time.monotonic() - fit_started)

    if plan.task == "classification":
        classes = [c.item() if isinstance(c, np.generic) else c for c in pipeline.classes_]
    metrics = {}
    for split, limit in (("train", TRAIN_SCORE_ROWS), ("validation", None)):
        parts = hosts.each(host_scores.score_share, pipeline, plan.task, classes, split, limit,
                           settings.seed)
        metrics[split] = host_scores.combine_scores(list(parts.values()), plan.task, classes)
    log.info("training rows scored: at most %d per host", TRAIN_SCORE_ROWS)
    metadata = ModelMetadata(
        target=str(plan.target), task=plan.task,
        features=[Feature(str(c), plan.kinds[c], plan.parts.get(c)) for c in plan.columns],
        classes=[_json_value(c) for c in classes] if classes is not None else None,
        model=settings.model.name,
        estimator=f"{type(estimator).__module__}.{type(estimator).__name__}",
        params={k: _json_value(v) for k, v in params.items()},
        metrics=metrics, versions=library_versions(), training_rows=total,
        header=first.has_header, hosts=hosts_used,
        columns=[Column(name, "target" if name == plan.target else
                        "ignored" if name in plan.ignored else "feature")
                 for name in first.all_columns],
        ignored_columns=list(plan.ignored),
    )
    return save_result(paths, pipeline, metadata, objective, started)


def train_on_instances(paths: Paths, settings: Settings, input_config: dict,
                       resources) -> TrainingResult | None:
    """A training job on several instances, on this one: the leader trains and writes; every
    other host serves it and writes nothing (None)."""
    from sklearn_byoc.common.failure import one_line, reason_for
    from sklearn_byoc.train import cluster, data
    from sklearn_byoc.train.trainer import ignore_resolver

    budget = cluster.memory_budget()
    log.info("%s", cluster.describe(resources, budget))
    channels = data.choose_channels(paths, input_config)
    header = settings.header if settings.header != "auto" else channels.header
    host = resources.hosts.index(resources.current_host)
    ignore = ignore_resolver(settings.ignore_columns) if settings.ignore_columns else None

    def read(role: str):
        from sklearn_byoc.common.tables.read import read_channel_share

        name = channels.training if role == "training" else channels.validation
        share = shares.share_for(host, len(resources.hosts),
                                 shares.is_sharded(input_config.get(name, {})))
        return read_channel_share(paths.channel_dir(name), share, header=header,
                                  what=f"channel {name!r}", expected=channels.formats.get(name),
                                  ignore=ignore)

    cluster.STORE["read"] = read
    cluster.STORE["keep"] = settings.keep_columns
    if resources.current_host != resources.hosts[0]:
        cluster.serve_as_worker(resources, settings.cluster_join_timeout, budget)
        return None
    job = cluster.Cluster(resources, settings.cluster_join_timeout)
    failure = None
    try:
        job.start(budget)
        return train_on_hosts(paths, settings, job, channels.validation is not None, budget)
    except BaseException as exc:
        failure = one_line(reason_for(exc)[0])
        raise
    finally:
        job.finish(failure)
