"""The preprocessing in front of the model: where the encoder caps the categories."""
import numpy as np
import pytest
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier

from sklearn_byoc.train.trainer import (build_pipeline, category_levels, fit_preprocessing,
                                         learns_from_rows)


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
    encoders = {name: step for name, step, _ in preprocess.transformers
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


def test_gradient_boosting_takes_missing_values_itself():
    """No imputer in front of HistGradientBoosting: numbers pass on as they are, and a
    missing or unseen category is NaN, which the model treats as missing."""
    X = frame()
    X.loc[::7, "x"] = np.nan
    X.loc[::5, "few"] = np.nan
    y = (X["x"].fillna(0) > 0).astype(int)
    kinds = {"x": "numeric", "few": "categorical", "many": "categorical"}
    pipeline = build_pipeline(HistGradientBoostingClassifier(max_iter=5), X, kinds, scale=False,
                              native_categories=True,
                              categories=category_levels(X, kinds)).fit(X, y)
    out = pipeline.named_steps["preprocess"].transform(pd.DataFrame(
        {"x": [np.nan, 2.5], "few": [np.nan, "never seen"], "many": ["id-3", "id-0"]}))
    assert np.isnan(out[0, 0]) and out[1, 0] == 2.5
    assert np.isnan(out[:, 1]).all()
    assert out[:, 2].tolist() == [23.0, 0.0]  # sorted levels: id-0, id-1, id-10, ..., id-3


def test_category_levels_are_the_sorted_text_without_missing_cells():
    X = pd.DataFrame({"c": np.array(["b", None, "a", "b", np.nan, "c"], dtype=object),
                      "n": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    assert category_levels(X, {"c": "categorical", "n": "numeric"}) == {"c": ["a", "b", "c"]}


def test_an_encoder_given_its_levels_learns_nothing_from_the_rows():
    X = frame()
    kinds = {"x": "numeric", "few": "categorical", "many": "categorical"}
    given = build_pipeline(HistGradientBoostingClassifier(), X, kinds, scale=False,
                           native_categories=True, categories=category_levels(X, kinds))
    assert not learns_from_rows(given.named_steps["preprocess"])
    capped = build_pipeline(HistGradientBoostingClassifier(max_bins=16), X, kinds, scale=False,
                            native_categories=True, categories=category_levels(X, kinds))
    assert learns_from_rows(capped.named_steps["preprocess"]) \
        == hasattr(capped.named_steps["preprocess"].transformers[-1][1], "max_categories")
    found = build_pipeline(HistGradientBoostingClassifier(), X, kinds, scale=False,
                           native_categories=True)
    assert learns_from_rows(found.named_steps["preprocess"])
    imputed = build_pipeline(HistGradientBoostingClassifier(), X, kinds, scale=False)
    assert learns_from_rows(imputed.named_steps["preprocess"])


@pytest.mark.parametrize("native", [True, False], ids=["ordinal", "one-hot"])
def test_fitted_preprocessing_equals_scikit_learns_fit_on_every_row(native):
    """What the trainer fits the estimator on is what the pipeline's own fit_transform
    gives, missing and rare values included."""
    X = frame()
    X.loc[::7, "x"] = np.nan
    X.loc[::5, "few"] = np.nan
    X.loc[3, "many"] = "only-once"
    y = pd.Series((X["x"].fillna(0) > 0).astype(int))
    kinds = {"x": "numeric", "few": "categorical", "many": "categorical"}

    def pipeline():
        return build_pipeline(HistGradientBoostingClassifier(max_iter=5), X, kinds, scale=False,
                              native_categories=native,
                              categories=category_levels(X, kinds) if native else None)

    matrix, replay = fit_preprocessing(pipeline(), X, y, kinds)
    expected = pipeline()[:-1].fit_transform(X, y)
    np.testing.assert_array_equal(matrix, expected)
    assert replay is not None
    np.testing.assert_array_equal(replay.transform_frame(X.iloc[::-1]), expected[::-1])
