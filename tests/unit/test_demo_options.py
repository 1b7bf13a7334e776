"""scripts/demo.py's options: the hyperparameters it hands the training job."""
import argparse

import pytest

from scripts.demo import build_parser, hyperparameter_pairs


def test_hyperparameters_are_key_value_pairs_kept_as_text():
    assert hyperparameter_pairs("ignore_columns=patient_id max_depth=6") == {
        "ignore_columns": "patient_id", "max_depth": "6"}
    assert hyperparameter_pairs("ignore_columns='a b,c' note=x=y") == {
        "ignore_columns": "a b,c", "note": "x=y"}
    assert hyperparameter_pairs("") == {}


@pytest.mark.parametrize("text, said", [
    ("max_depth", "'max_depth' is not KEY=VALUE"),
    ("=6", "'=6' is not KEY=VALUE"),
    ("model=knn", "give model with --model"),
])
def test_a_malformed_pair_is_refused_saying_how_to_write_it(text, said):
    with pytest.raises(argparse.ArgumentTypeError, match=said):
        hyperparameter_pairs(text)


def test_the_demo_parser_takes_them():
    args = build_parser().parse_args(["--hyperparameters", "max_depth=6", "--model", "knn"])
    assert args.hyperparameters == {"max_depth": "6"} and args.model == "knn"
