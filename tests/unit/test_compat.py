"""What differs between the scikit-learn lines, met in sklearn_byoc/common/compat.py.

Every test here runs on every line (make test-lines) and expects the same answer on each.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from sklearn_byoc.common import compat
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables.read import read_folder


@pytest.mark.parametrize("version, line", [("1.2.2", "1.2"), ("1.4.1.post1", "1.4"),
                                           ("1.9.1", "1.9"), ("0.24.2", "0.24"),
                                           ("1.10.0rc1", "1.10"), ("pre-0.18", None),
                                           ("", None)])
def test_line_of(version, line):
    assert compat.line_of(version) == line


RUNNING_LINE = compat.line_of(sklearn.__version__)


def test_the_running_line_is_one_the_image_is_built_for():
    assert RUNNING_LINE in compat.LINES
    assert RUNNING_LINE == ".".join(sklearn.__version__.split(".")[:2])


def test_version_warnings_of_every_line_are_silenced_and_others_are_not():
    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    state = model.__getstate__()
    state["_sklearn_version"] = "0.0.1"
    with warnings.catch_warnings(record=True) as loud:
        warnings.simplefilter("always")
        LogisticRegression().__setstate__(dict(state))
    # Each line warns for an estimator from another version, with its own warning class.
    assert len(loud) == 1 and "0.0.1" in str(loud[0].message)
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("always")
        with compat.quiet_version_warnings():
            LogisticRegression().__setstate__(dict(state))
            warnings.warn("another warning", UserWarning)
    assert [str(w.message) for w in quiet] == ["another warning"]


def test_fast_config_predicts_on_every_line():
    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    with compat.fast_config(assume_finite=True):
        assert sklearn.get_config()["assume_finite"] is True
        assert list(model.predict(np.eye(4))) == [0, 1, 0, 1]
    assert sklearn.get_config()["assume_finite"] is False


def test_a_nul_byte_in_a_csv_is_refused_on_every_line(tmp_path):
    # pandas 3.0 (the 1.2 line's) would read "3" for the cell "3\x004" and go on.
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n3\x004,5\n6,7\n")
    with pytest.raises(UserError, match=r"data.csv is not UTF-8 text \(a NUL byte at offset "
                                         r"9\); save it as UTF-8 CSV"):
        read_folder(tmp_path)
    assert compat.nul_byte_offset(path) == 9
    path.write_bytes(b"a,b\n1,2\n")
    assert compat.nul_byte_offset(path) is None


def test_the_version_warning_class_exists_from_1_3_on():
    """1.3 brought InconsistentVersionWarning; the 1.2 line has none (compat falls back to
    the message of its UserWarning)."""
    from sklearn import exceptions

    has = hasattr(exceptions, "InconsistentVersionWarning")
    assert has == (tuple(int(p) for p in RUNNING_LINE.split(".")) >= (1, 3))


def test_the_ordinal_encoder_keeps_at_most_max_categories_where_the_line_can():
    """max_categories came with scikit-learn 1.3; the 1.2 line keeps every category."""
    encoder = compat.ordinal_encoder(2, handle_unknown="use_encoded_value",
                                     unknown_value=np.nan)
    codes = encoder.fit_transform(np.array([["a"], ["a"], ["a"], ["b"], ["c"], ["d"]]))
    limited = tuple(int(p) for p in RUNNING_LINE.split(".")) >= (1, 3)
    assert int(np.nanmax(codes)) == (1 if limited else 3)
    assert np.isnan(encoder.transform(np.array([["never seen"]]))[0, 0])


def test_refuses_missing_reads_the_allow_nan_tag_on_every_line():
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sklearn_byoc.common.compat import OLD_TAGS_METHOD, refuses_missing

    assert refuses_missing(LogisticRegression())
    assert refuses_missing(make_pipeline(LogisticRegression()))
    assert not refuses_missing(HistGradientBoostingClassifier())
    assert not refuses_missing(make_pipeline(SimpleImputer(), LogisticRegression()))
    assert not refuses_missing(ColumnTransformer([("a", SimpleImputer(), [0])]))
    assert not refuses_missing(object())
    try:
        from sklearn.utils import get_tags  # noqa: F401 - scikit-learn >= 1.6
    except ImportError:
        # The private method the older lines are read through is still there.
        assert hasattr(LogisticRegression(), OLD_TAGS_METHOD)
