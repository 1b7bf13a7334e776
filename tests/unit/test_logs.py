"""The log level: what the SDK sends (a number as text), level names, and anything else."""
import logging

import pytest

from sklearn_byoc.common.logs import log_level, parse_log_level


@pytest.mark.parametrize("value, expected", [
    ("20", 20), ("10", 10), ("30", 30), (" 40 ", 40), ("0", 0), ("25", 25), (30, 30),
    ("WARNING", 30), ("warning", 30), ("Debug", 10), ("ERROR", 40), ("CRITICAL", 50),
    ("WARN", 30), ("", 20), (None, 20),
])
def test_levels_the_sdk_and_people_write(value, expected):
    assert parse_log_level(value) == expected


@pytest.mark.parametrize("value", ["loud", "20.0", "-10", "INFO!", True, "[20]"])
def test_values_that_are_no_level(value):
    assert parse_log_level(value) is None


def test_a_bad_value_logs_one_warning_and_gives_info(caplog):
    with caplog.at_level(logging.INFO):
        assert log_level("loud", "the hyperparameter sagemaker_container_log_level") == 20
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert message.startswith("the hyperparameter sagemaker_container_log_level is 'loud', "
                              "which is not a log level: using INFO")
    assert "30 WARNING" in message


def test_a_good_value_logs_nothing(caplog):
    with caplog.at_level(logging.DEBUG):
        assert log_level("30", "SAGEMAKER_CONTAINER_LOG_LEVEL") == 30
    assert not caplog.records
