"""Error types that carry a message meant for the person who can fix the problem."""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: bad data, a bad setting, a missing file.

    The message says what was wrong and, where it is not obvious, how to fix
    it.  Stages turn it into the job's failure reason; ``serve`` turns it into a
    4xx answer.
    """

    status = 400

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


class HyperparameterError(UserError):
    """A hyperparameter the job cannot use: names the key, the value and what it takes."""

    def __init__(self, key: str, value, expected: str, hint: str = ""):
        self.key = key
        message = f"hyperparameter '{key}' must be {expected}, got {value!r}"
        super().__init__(message + (f"; {hint}" if hint else ""))

    def __reduce__(self):
        # Raised on another host of a job and sent to the first one, pickled.
        return _hyperparameter_error, (self.key, str(self))


def _hyperparameter_error(key: str, message: str) -> HyperparameterError:
    error = HyperparameterError.__new__(HyperparameterError)
    UserError.__init__(error, message)
    error.key = key
    return error


class StageStopped(BaseException):
    """Raised in a stage when the platform asks it to stop (SIGTERM/SIGINT).

    A BaseException, as KeyboardInterrupt is: the signal raises it wherever the work is,
    and an ``except Exception`` there (one that falls back to a slower path) must not take
    the stop for a failure and carry on."""
