"""The preprocessing in front of the model: where the encoder caps the categories."""
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from sklearn_byoc.train.trainer import build_pipeline


def frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n),
                         "few": rng.choice(["a", "b", "c"], n).astype(object),
                         "many": np.array([f"id-{i % 40}" for i in range(n)], dtype=object)})


def test_only_a_column_with_more_levels_than_bins_gets_capped():
    X = frame()
    y = (X["x"] > 0).astype(int)
    kinds = {"x": "numeric", "few": "categorical", "many": "categorical"}
    pipeline = build_pipeline(HistGradientBoostingClassifier(max_bins=16, max_iter=5), X, kinds,
                              scale=False, native_categories=True)
    pipeline.fit(X, y)
    groups = {name: columns for name, _, columns in pipeline.named_steps["preprocess"]
              .transformers_ if name != "remainder"}
    assert groups == {"numeric": ["x"], "categorical": ["few"], "categorical_many": ["many"]}
    encoders = {name: step.named_steps["encode"] for name, step, _ in pipeline.named_steps[
        "preprocess"].transformers_ if name.startswith("categorical")}
    assert getattr(encoders["categorical"], "max_categories", None) is None
    capped = encoders["categorical_many"]
    if hasattr(capped, "max_categories"):  # scikit-learn 1.3 on
        assert capped.max_categories == 16
        assert capped.transform(X[["many"]].to_numpy()).max() < 16
    assert pipeline.named_steps["model"].categorical_features == [1, 2]
    assert pipeline.predict(X.head(3)).shape == (3,)


def test_no_categorical_column_means_no_categorical_features():
    X = frame()[["x"]]
    pipeline = build_pipeline(HistGradientBoostingClassifier(max_iter=5), X, {"x": "numeric"},
                              scale=False, native_categories=True)
    assert pipeline.named_steps["model"].categorical_features is None
