"""Reading which scikit-learn pickled a model, without unpickling it; and what serve does
with a model of another line (in process; tests/contract runs serve itself)."""
from __future__ import annotations

import io
import logging
import pickle
import pickletools
import sys
import warnings

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_byoc.common import compat
from sklearn_byoc.common.model_files import ModelLoadError, load_model
from sklearn_byoc.common.pickle_versions import Unreadable, WrittenBy, sklearn_versions
from sklearn_byoc.serve.model import ServedModel
from tests.old_sklearn import (ALL, REFUSED, SERVED, assert_predictions_match, build_argument,
                               refusal_start)

RUNNING = sklearn.__version__
LINE = compat.line_of(RUNNING)
X = np.random.default_rng(0).normal(size=(60, 3))
Y = (X[:, 0] > 0).astype(int)


def versions(found) -> set[str]:
    return {version for version, _ in found}


def classes(found) -> set[str]:
    return {name for _, name in found}


# -- reading the versions -------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ALL, ids=str)
def test_the_version_of_each_old_fixture_is_read_on_every_line(fixture):
    found = sklearn_versions(fixture.model_file)
    assert versions(found) == {fixture.version}
    assert fixture.expected["estimator"] in classes(found)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)],
                         ids=str)
def test_every_joblib_compression_is_read(tmp_path, compress):
    forest = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, Y)
    path = tmp_path / "model.joblib"
    joblib.dump(forest, path, compress=compress)
    found = sklearn_versions(path)
    assert versions(found) == {RUNNING}
    # The forest and each of its trees (and the template tree it copies) record it.
    tree = f"{type(forest.estimators_[0]).__module__}.DecisionTreeClassifier"
    assert found[(RUNNING, tree)] >= 4
    assert found[(RUNNING, f"{RandomForestClassifier.__module__}.RandomForestClassifier")] == 1


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_pickles_of_every_protocol_are_read(tmp_path, protocol):
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=protocol))
    found = sklearn_versions(path)
    assert versions(found) == {RUNNING}
    assert {"sklearn.pipeline.Pipeline",
            f"{StandardScaler.__module__}.StandardScaler",
            f"{LogisticRegression.__module__}.LogisticRegression"} <= classes(found)


def test_estimators_inside_an_object_array_are_read(tmp_path):
    """joblib writes an object array as a nested pickle after the array's wrapper:
    gradient boosting keeps its trees in one."""
    boosting = GradientBoostingClassifier(n_estimators=3, max_depth=2).fit(X, Y)
    path = tmp_path / "model.joblib"
    joblib.dump(boosting, path)
    found = sklearn_versions(path)
    regressor = f"{type(boosting.estimators_[0, 0]).__module__}.DecisionTreeRegressor"
    assert found[(RUNNING, regressor)] == 3


class Runs:
    """Unpickling this would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_nothing_in_the_file_is_run_or_imported(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    joblib.dump({"model": Runs(marker), "n": np.arange(5)}, path)
    # An estimator of a module that does not exist, carrying a version.
    fake = tmp_path / "fake.pkl"
    fake.write_bytes(b"\x80\x02cno_such_module_here\nThing\n)\x81}X\x10\x00\x00\x00"
                     b"_sklearn_versionX\x05\x00\x00\x001.0.2sb.")
    pickletools.dis(fake.read_bytes(), out=io.StringIO())  # a valid pickle
    assert sklearn_versions(path) == {}
    assert not marker.exists()
    assert dict(sklearn_versions(fake)) == {("1.0.2", "no_such_module_here.Thing"): 1}
    assert "no_such_module_here" not in sys.modules


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", b"\x80\x05\x95"],
                         ids=["empty", "text", "cut"])
def test_what_is_not_a_pickle_is_unreadable(tmp_path, content):
    path = tmp_path / "model.joblib"
    path.write_bytes(content)
    with pytest.raises(Unreadable):
        sklearn_versions(path)


def test_a_joblib_file_cut_inside_an_array_is_unreadable(tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(RandomForestClassifier(n_estimators=2, random_state=0).fit(X, Y), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(Unreadable):
        sklearn_versions(path)


def test_lz4_without_its_package_is_unreadable_and_says_why(tmp_path):
    # lz4 is no dependency of the image: joblib itself could not read the file either.
    try:
        import lz4  # noqa: F401
        pytest.skip("lz4 is installed here")
    except ImportError:
        pass
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x04\x22\x4d\x18" + b"\0" * 20)
    with pytest.raises(Unreadable, match="lz4"):
        sklearn_versions(path)


# -- what the versions mean ----------------------------------------------------------------
def _written(tmp_path, version: str) -> WrittenBy:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x02csklearn.linear_model._logistic\nLogisticRegression\n)\x81}"
                     b"X\x10\x00\x00\x00_sklearn_versionX" + len(version).to_bytes(4, "little")
                     + version.encode() + b"sb.")
    return WrittenBy.read(path)


def test_another_line_is_refused_with_the_build_argument_of_its_line(tmp_path):
    other = "1.2.2" if LINE != "1.2" else "1.4.2"
    written = _written(tmp_path, other)
    assert written.versions == (other,) and written.differs and written.other_line
    reason = written.refusal(ValueError("boom"))
    assert "\n" not in reason
    assert reason.startswith(f"{written.path} was pickled by scikit-learn {other} and this "
                             f"image runs scikit-learn {RUNNING}, which cannot use it "
                             "(ValueError); ")
    line = compat.line_of(other)
    assert f"--build-arg SKLEARN_VERSION={line}" in reason
    assert f"make image SKLEARN={line}" in reason
    assert f"build_and_push.sh --sklearn-version {line}" in reason


def test_a_line_no_image_holds_says_which_lines_there_are(tmp_path):
    reason = _written(tmp_path, "1.3.2").refusal(AttributeError("x"))
    assert "no image line holds scikit-learn 1.3 (SKLEARN_VERSION can be 1.2, 1.4, 1.9)" \
        in reason


def test_the_same_line_in_another_patch_release_is_no_other_line(tmp_path):
    patch = f"{LINE}.99"
    written = _written(tmp_path, patch)
    assert written.differs and not written.other_line
    assert written.warning(probed=False) == (
        f"{written.path} was pickled by scikit-learn {patch} and this image runs {RUNNING}, "
        f"of the same {LINE} line")


def test_the_running_version_is_no_difference(tmp_path):
    written = _written(tmp_path, RUNNING)
    assert not written.differs and not written.other_line


def test_metadata_json_speaks_for_a_pickle_that_records_no_version(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    assert WrittenBy.read(path).versions == ()
    assert WrittenBy.read(path, recorded="1.2.2").versions == ("1.2.2",)


# -- serving another line's model, in process ----------------------------------------------
@pytest.mark.parametrize("fixture", ALL, ids=str)
def test_each_line_serves_or_refuses_each_old_model_as_measured(fixture, caplog):
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            model = ServedModel.from_dir(fixture.folder)
        except ModelLoadError as exc:
            outcome, reason = REFUSED, str(exc)
        else:
            outcome, reason = SERVED, None
    assert outcome == fixture.outcome(LINE), reason
    # scikit-learn's per-estimator warnings never reach the log or the warnings machinery.
    assert not [w for w in seen if "unpickle" in str(w.message).lower()
                or type(w.message).__name__ == "InconsistentVersionWarning"]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    if outcome == REFUSED:
        assert reason.startswith(refusal_start(fixture, fixture.model_file, RUNNING)), reason
        assert build_argument(fixture) in reason and "\n" not in reason
        return
    request = fixture.request
    prediction = model.predict(model.schema.from_positional_rows(request["instances"]),
                               probabilities=True)
    assert_predictions_match(fixture, prediction.labels, prediction.probabilities,
                             prediction.classes)
    if fixture.line == LINE:
        assert warned == []
    else:
        assert len(warned) == 1, [r.getMessage() for r in warned]
        message = warned[0].getMessage()
        assert f"pickled by scikit-learn {fixture.version} and this image runs {RUNNING}" \
            in message
        assert "predicts a probe row" in message and build_argument(fixture) in message


def test_load_model_alone_refuses_another_lines_model_that_fails_to_load():
    """evaluate (and anything else that loads a model folder) gets the same reason."""
    refused = 0
    for fixture in [f for f in ALL if f.outcome(LINE) == REFUSED]:
        try:
            load_model(fixture.folder, require_metadata=False)
        except ModelLoadError as exc:
            refused += 1
            assert str(exc).startswith(refusal_start(fixture, fixture.model_file, RUNNING))
            assert build_argument(fixture) in str(exc)
    # On every line at least one old forest fails to load at all.
    assert refused >= 1


def test_a_corrupt_file_of_this_line_keeps_the_usual_message(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    path = model_dir / "model.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 40])
    with pytest.raises(ModelLoadError, match="cannot be loaded .*the file is corrupt or was "
                                             "written by incompatible library versions"):
        ServedModel.from_dir(model_dir)
