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
    preprocess = pipeline.named_steps["preprocess"]
    groups = {name: columns for name, _, columns in preprocess.transformers}
    assert groups == {"numeric": ["x"], "categorical": ["few"], "categorical_many": ["many"]}
    encoders = {name: step.named_steps["encode"] for name, step, _ in preprocess.transformers
                if name.startswith("categorical")}
    assert getattr(encoders["categorical"], "max_categories", None) is None
    assert pipeline.named_steps["model"].categorical_features == [1, 2]
    capped = encoders["categorical_many"]
    if not hasattr(capped, "max_categories"):
        return  # scikit-learn 1.2: no cap, and HistGradientBoosting refuses such a column
    assert capped.max_categories == 16
    pipeline.fit(X, y)
    fitted = pipeline.named_steps["preprocess"].named_transformers_["categorical_many"]
    assert fitted.transform(X[["many"]].to_numpy()).max() < 16
    assert pipeline.predict(X.head(3)).shape == (3,)


def test_no_categorical_column_means_no_categorical_features():
    X = frame()[["x"]]
    pipeline = build_pipeline(HistGradientBoostingClassifier(max_iter=5), X, {"x": "numeric"},
                              scale=False, native_categories=True)
    assert pipeline.named_steps["model"].categorical_features is None
