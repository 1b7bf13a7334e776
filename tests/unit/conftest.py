"""Fixtures the unit tests share."""
import pytest

from sklearn_byoc.common.model_files import Feature, ModelMetadata
from sklearn_byoc.serve.schema import Schema

# A churn model's features, as hand-made metadata names them.
CHURN_FEATURES = (("age", "numeric"), ("plan", "categorical"), ("calls", "numeric"))


def churn_metadata(**more) -> ModelMetadata:
    return ModelMetadata(target="churn", task="classification",
                         features=[Feature(name, kind) for name, kind in CHURN_FEATURES],
                         classes=["no", "yes"], **more)


@pytest.fixture(scope="module")
def schema() -> Schema:
    """A classifier's schema over age (numeric), plan (categorical) and calls (numeric)."""
    return Schema(churn_metadata())
