"""Safe archive extraction, against hostile archives built here."""
import io
import tarfile
from pathlib import Path

import pytest

from sklearn_byoc.common.archives import ArchiveError, safe_extract


def member(name: str, kind=tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
           size: int | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    info.size = len(data) if kind == tarfile.REGTYPE and size is None else (size or 0)
    return info, data


def make_tar(path: Path, members, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


@pytest.fixture
def dirs(tmp_path):
    target = tmp_path / "root" / "target"
    target.mkdir(parents=True)
    return tmp_path, target


def test_normal_archive_extracts(dirs):
    tmp_path, target = dirs
    archive = make_tar(tmp_path / "model.tar.gz", [
        member("model.joblib", data=b"model bytes"),
        member("code", kind=tarfile.DIRTYPE),
        member("code/inference.py", data=b"print('hi')\n"),
        member("code/latest.py", kind=tarfile.SYMTYPE, linkname="inference.py"),
        member("code/copy.py", kind=tarfile.LNKTYPE, linkname="code/inference.py"),
    ])
    names = safe_extract(archive, target)
    assert names == ["model.joblib", "code", "code/inference.py", "code/latest.py",
                     "code/copy.py"]
    assert (target / "model.joblib").read_bytes() == b"model bytes"
    assert (target / "code" / "inference.py").read_text() == "print('hi')\n"
    assert (target / "code" / "latest.py").read_text() == "print('hi')\n"
    assert (target / "code" / "copy.py").read_text() == "print('hi')\n"


def test_uncompressed_archive_extracts(dirs):
    tmp_path, target = dirs
    archive = make_tar(tmp_path / "model.tar", [member("a.txt", data=b"a")], mode="w")
    safe_extract(archive, target)
    assert (target / "a.txt").read_text() == "a"


HOSTILE = {
    "parent": ([member("../escaped.txt", data=b"x")], "../escaped.txt", "'..'"),
    "nested parent": ([member("ok/../../escaped.txt", data=b"x")], "ok/../../escaped.txt",
                      "'..'"),
    "absolute": ([member("/tmp/escaped.txt", data=b"x")], "/tmp/escaped.txt", "absolute"),
    "symlink absolute": ([member("link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
                         "link", "symbolic link"),
    "symlink outside": ([member("sub/link", kind=tarfile.SYMTYPE, linkname="../../outside")],
                        "sub/link", "symbolic link"),
    "hard link outside": ([member("hard", kind=tarfile.LNKTYPE, linkname="../outside.txt")],
                          "hard", "hard link"),
    "hard link absolute": ([member("hard", kind=tarfile.LNKTYPE, linkname="/etc/passwd")],
                           "hard", "hard link"),
    "char device": ([member("null", kind=tarfile.CHRTYPE)], "null", "device"),
    "block device": ([member("disk", kind=tarfile.BLKTYPE)], "disk", "device"),
    "fifo": ([member("pipe", kind=tarfile.FIFOTYPE)], "pipe", "FIFO"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_naming_the_member(dirs, case):
    tmp_path, target = dirs
    members, name, why = HOSTILE[case]
    archive = make_tar(tmp_path / "evil.tar.gz", [member("first.txt", data=b"ok")] + members)
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, target)
    message = str(info.value)
    assert f"refused member {name!r}" in message
    assert why in message
    # Nothing was written: every member is checked before extraction starts.
    assert list(target.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "root" / "escaped.txt").exists()


def test_symlink_then_write_through_it_is_refused(dirs):
    tmp_path, target = dirs
    archive = make_tar(tmp_path / "evil.tar.gz", [
        member("dir", kind=tarfile.SYMTYPE, linkname=".."),
        member("dir/escaped.txt", data=b"x"),
    ])
    with pytest.raises(ArchiveError, match="refused member 'dir'"):
        safe_extract(archive, target)
    assert not (tmp_path / "root" / "escaped.txt").exists()


def test_oversize_archive_is_refused_naming_the_member(dirs):
    tmp_path, target = dirs
    archive = make_tar(tmp_path / "big.tar.gz", [
        member("small.bin", data=b"0" * 600),
        member("big.bin", data=b"0" * 600),
    ])
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, target, max_bytes=1000)
    assert "refused member 'big.bin'" in str(info.value)
    assert "1000 byte cap" in str(info.value)
    assert list(target.iterdir()) == []


def test_size_cap_comes_from_the_environment(dirs, monkeypatch):
    tmp_path, target = dirs
    archive = make_tar(tmp_path / "big.tar.gz", [member("big.bin", data=b"0" * 2048)])
    monkeypatch.setenv("SAGEMAKER_MAX_ARCHIVE_BYTES", "1024")
    with pytest.raises(ArchiveError, match="SAGEMAKER_MAX_ARCHIVE_BYTES"):
        safe_extract(archive, target)
    monkeypatch.setenv("SAGEMAKER_MAX_ARCHIVE_BYTES", "4096")
    safe_extract(archive, target)
    assert (target / "big.bin").stat().st_size == 2048


def test_not_an_archive_names_the_file(dirs):
    tmp_path, target = dirs
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"this is not a tarball")
    with pytest.raises(ArchiveError) as info:
        safe_extract(path, target)
    assert str(path) in str(info.value)


def test_truncated_archive_names_the_file(dirs):
    tmp_path, target = dirs
    good = make_tar(tmp_path / "good.tar", [member("a.bin", data=b"x" * 20000)], mode="w")
    path = tmp_path / "cut.tar"
    path.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ArchiveError) as info:
        safe_extract(path, target)
    assert str(path) in str(info.value)
