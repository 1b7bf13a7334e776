"""A full disk as a reason the user can act on: the folder, the bytes, the volume setting."""
import errno
from pathlib import Path

import pytest

from sklearn_byoc.common.disk import NoSpaceLeft, from_os_error, size_text, writing
from sklearn_byoc.common.errors import UserError


@pytest.mark.parametrize("size, text", [(0, "0 bytes"), (1023, "1023 bytes"), (1024, "1.0 KiB"),
                                        (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"),
                                        (int(1.9 * 2**30), "1.9 GiB"), (3 * 2**40, "3.0 TiB")])
def test_size_text(size, text):
    assert size_text(size) == text


def test_a_full_disk_while_writing_becomes_no_space_left(tmp_path):
    partial = tmp_path / ".model.joblib.partial"
    with pytest.raises(NoSpaceLeft) as info:
        with writing(tmp_path, "the model", partial=partial):
            partial.write_bytes(b"x" * 3000)
            raise OSError(errno.ENOSPC, "No space left on device", str(partial))
    error = info.value
    assert isinstance(error, UserError)
    assert not partial.exists()  # its room is free again
    assert error.written == 3000 and error.file == "model.joblib"
    reason = error.describe("train")
    assert reason.startswith(f"no space left on the device while writing the model to "
                             f"{tmp_path} (model.joblib needs more than the 2.9 KiB written "
                             "before the volume filled; ")
    assert "free of" in reason
    assert "raise the training job's VolumeSizeInGB (the SDK estimator's volume_size, 30 GB " \
           "by default)" in reason


def test_the_bytes_needed_when_they_are_known(tmp_path):
    with pytest.raises(NoSpaceLeft) as info:
        with writing(tmp_path, "the evaluation", needed=2048, file="evaluation.json"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    reason = info.value.describe("processing")
    assert "(evaluation.json needs 2.0 KiB; " in reason
    assert "the processing job's VolumeSizeInGB (the SDK Processor's volume_size_in_gb" in reason


def test_other_os_errors_pass_through(tmp_path):
    with pytest.raises(PermissionError):
        with writing(tmp_path, "the model"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_a_disk_full_error_raised_anywhere_names_its_folder(tmp_path):
    error = from_os_error(OSError(errno.ENOSPC, "No space left on device",
                                  str(tmp_path / "code" / "x.py")))
    assert error.folder == tmp_path / "code"
    assert error.describe().startswith(f"no space left on the device while writing x.py to "
                                       f"{tmp_path / 'code'}")


def test_a_folder_that_does_not_exist_yet_still_gets_figures(tmp_path):
    error = NoSpaceLeft(tmp_path / "not" / "yet", "the splits")
    assert error.free is not None and error.total > 0
    assert Path(tmp_path / "not").exists() is False
