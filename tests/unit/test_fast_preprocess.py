"""The numpy replay of a pipeline's preprocessing agrees with scikit-learn, for one-hot and
for ordinal codes (HistGradientBoosting's native categories), unseen values included."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from sklearn_byoc.common.model_files import Feature, ModelMetadata
from sklearn_byoc.common.fast_preprocess import compile_preprocess
from sklearn_byoc.serve.schema import Schema

SCHEMA = Schema(ModelMetadata(target="y", task="classification", features=[
    Feature("age", "numeric"), Feature("plan", "categorical"), Feature("region", "categorical")]))


def data(n=300):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"age": rng.normal(40, 10, n),
                          "plan": rng.choice(["gold", "basic", "silver"], n).astype(object),
                          "region": rng.choice(["n", "s", "e", "w"], n).astype(object)})
    frame.loc[::17, "age"] = np.nan
    frame.loc[::13, "plan"] = np.nan
    return frame, (frame["plan"].fillna("x") == "gold").to_numpy()


def pipeline(encoder, model):
    categorical = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                            ("encode", encoder)])
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    pre = ColumnTransformer([("numeric", numeric, ["age"]),
                             ("categorical", categorical, ["plan", "region"])])
    return Pipeline([("preprocess", pre), ("model", model)])


@pytest.mark.parametrize("encoder, model", [
    (OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
    (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
     HistGradientBoostingClassifier(categorical_features=[1, 2], max_iter=20)),
], ids=["one-hot", "ordinal"])
def test_compiled_preprocessing_equals_scikit_learn(encoder, model):
    frame, y = data()
    fitted = pipeline(encoder, model).fit(frame, y)
    fast = compile_preprocess(fitted, SCHEMA.model_kinds)
    assert fast is not None
    rows = pd.DataFrame({"age": [30.0, np.nan, 1e9], "plan": ["gold", "platinum", np.nan],
                         "region": [np.nan, "n", "unheard-of"]}).astype(
                             {"plan": object, "region": object})
    records = SCHEMA.from_named_rows(rows.to_dict(orient="records"))
    expected = np.asarray(fitted[0].transform(rows), dtype=np.float64)
    np.testing.assert_allclose(fast.transform(records.columns, records.n), expected, rtol=1e-12,
                               equal_nan=True)
    np.testing.assert_array_equal(fitted[1].predict(fast.transform(records.columns, records.n)),
                                  fitted.predict(rows))


@pytest.mark.parametrize("order", ["C", "F"])
def test_large_blocks_in_either_order_equal_scikit_learn(order):
    """Past the dict lookup's size: pandas' lookup, missing and unseen cells among known ones,
    and a matrix filled row-major or column by column."""
    frame, y = data(3000)
    frame.loc[::11, "region"] = "never seen"
    for encoder, model in [(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
                           (OrdinalEncoder(handle_unknown="use_encoded_value",
                                           unknown_value=np.nan),
                            HistGradientBoostingClassifier(categorical_features=[1, 2],
                                                           max_iter=5))]:
        fitted = pipeline(encoder, model).fit(frame.iloc[:2000], y[:2000])
        fast = compile_preprocess(fitted, SCHEMA.model_kinds)
        got = fast.transform_frame(frame, order=order)
        assert got.flags[f"{order}_CONTIGUOUS"]
        np.testing.assert_allclose(got, np.asarray(fitted[0].transform(frame), dtype=np.float64),
                                   rtol=1e-12, equal_nan=True)


def test_a_stop_while_compiling_is_not_taken_for_an_unknown_layout(monkeypatch):
    """SIGTERM raises StageStopped wherever the work is: the fallback for a layout it does
    not know must let it through (it used to carry on fitting a million trees)."""
    from sklearn_byoc.common import fast_preprocess
    from sklearn_byoc.common.errors import StageStopped

    frame, y = data()
    fitted = pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(frame, y)

    def stopped(*args, **kwargs):
        raise StageStopped("stopped by SIGTERM")

    monkeypatch.setattr(fast_preprocess, "_categorical_block", stopped)
    with pytest.raises(StageStopped):
        compile_preprocess(fitted, SCHEMA.model_kinds)
