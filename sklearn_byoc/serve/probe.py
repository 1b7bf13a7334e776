"""One made-up row through a model, to learn whether it predicts at all.

A model pickled by another scikit-learn line may load and still fail on its
first request: attributes a newer scikit-learn expects are missing
(HistGradientBoosting pickled by 1.2 has no ``_preprocessor`` under 1.4+).
``serve`` predicts one row at start instead, so such a model stops the
container with a reason rather than answering 500s.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sklearn_byoc.serve.describe import column_transformer, selected_columns


def probe(model) -> bool:
    """Predicts one row through a :class:`~sklearn_byoc.serve.model.ServedModel` (and
    its probabilities where the model gives them); False when the model says nothing
    of its features, so no row can be made."""
    if model.schema is None:
        return False
    categories = known_categories(model.estimator, model.schema.names)
    plain = {"categorical": "", "date": "1970-01-01"}
    row = [categories.get(name, "") if kind == "categorical" else plain.get(kind, 0.0)
           for name, kind in model.schema.kinds.items()]
    model.predict(model.schema.from_positional_rows([row]),
                  probabilities=model.has_probabilities)
    return True


def known_categories(estimator: Any, names: list[str]) -> dict[str, Any]:
    """A category each text feature's fitted encoder knows, so that an encoder that
    refuses unknown categories takes the probe row."""
    transformer = column_transformer(estimator)
    found: dict[str, Any] = {}
    if transformer is None:
        return found
    for _, step, columns in transformer.transformers_:
        selected = selected_columns(columns, names) if not isinstance(step, str) else None
        leaves = [s for _, s in step.steps] if hasattr(step, "steps") else [step]
        for leaf in leaves:
            categories = getattr(leaf, "categories_", None)
            if categories is None or selected is None or len(categories) != len(selected):
                continue
            for name, values in zip(selected, categories):
                known = [v for v in np.asarray(values, dtype=object).tolist()
                         if isinstance(v, str) or (isinstance(v, (int, float)) and v == v)]
                if known:
                    found.setdefault(name, known[0])
            break
    return found
