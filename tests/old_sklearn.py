"""The models pickled by older scikit-learn lines (tests/fixtures/old_sklearn), and what
each line does with each of them.

Not a test module: the unit, contract and container tests share it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scripts.harness import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "old_sklearn"
MODELS = ("random_forest", "hist_gradient_boosting", "logistic_pipeline")

# What a line does with each fixture, measured by loading each one and predicting
# its request under every line (scikit-learn 1.2.2, 1.4.2, 1.9.1):
#   the forest of 1.2 fails to load under 1.4 and 1.9 ("node array from the
#   pickle has an incompatible dtype"), that of 1.4 under 1.2; the boosting
#   model of 1.2 loads under 1.4 and 1.9 but cannot predict (it has no
#   _preprocessor), that of 1.4 fails to load under 1.9 (its loss is a class
#   1.9 no longer has); the logistic pipeline of 1.2 works under 1.4 and 1.9,
#   that of 1.4 under 1.9 but not 1.2.  Models of a newer line under an older
#   one are refused: scikit-learn never supported that direction.
SERVED, REFUSED = "served", "refused"
OUTCOMES = {
    # (image line, model's line): {model: outcome}
    ("1.2", "1.4"): dict.fromkeys(MODELS, REFUSED),
    ("1.4", "1.2"): {"random_forest": REFUSED, "hist_gradient_boosting": REFUSED,
                     "logistic_pipeline": SERVED},
    ("1.9", "1.2"): {"random_forest": REFUSED, "hist_gradient_boosting": REFUSED,
                     "logistic_pipeline": SERVED},
    ("1.9", "1.4"): {"random_forest": SERVED, "hist_gradient_boosting": REFUSED,
                     "logistic_pipeline": SERVED},
}


@dataclass(frozen=True)
class Fixture:
    line: str
    name: str

    @property
    def folder(self) -> Path:
        return FIXTURES / f"sklearn-{self.line}" / self.name

    @property
    def model_file(self) -> Path:
        return next(p for p in (self.folder / "model.joblib", self.folder / "model.pkl")
                    if p.exists())

    @property
    def expected(self) -> dict:
        return json.loads((self.folder / "expected.json").read_text())

    @property
    def version(self) -> str:
        """The scikit-learn that pickled it, as that scikit-learn reported itself."""
        return self.expected["versions"]["scikit-learn"]

    @property
    def request(self) -> dict:
        """{"features": [...], "instances": [[...], ...]}: the rows in feature order."""
        return json.loads((self.folder / "request.json").read_text())

    def outcome(self, image_line: str) -> str:
        if image_line == self.line:
            return SERVED
        return OUTCOMES[(image_line, self.line)][self.name]

    def __str__(self) -> str:
        return f"{self.line}-{self.name}"


ALL = [Fixture(line, name) for line in ("1.2", "1.4") for name in MODELS]


def assert_predictions_match(fixture: Fixture, labels, probabilities, classes) -> None:
    """Labels exactly, probabilities to rounding: what the model's own line predicted."""
    expected = fixture.expected
    assert list(classes) == expected["classes"]
    assert list(labels) == expected["predictions"]
    np.testing.assert_allclose(np.asarray(probabilities, dtype=float),
                               np.asarray(expected["probabilities"]), rtol=0, atol=1e-12)


def refusal_start(fixture: Fixture, path: Path, running: str) -> str:
    """How the one-line refusal begins: the model's version, then the image's."""
    return (f"{path} was pickled by scikit-learn {fixture.version} and this image runs "
            f"scikit-learn {running}, which cannot use it")


def build_argument(fixture: Fixture) -> str:
    return f"--build-arg SKLEARN_VERSION={fixture.line}"
