import os
import stat

import pytest

from compress.atomic import atomic_write, atomic_write_text


def test_write_refuse_overwrite_and_permissions(tmp_path):
    path = tmp_path / "sub" / "result.json"
    atomic_write_text(str(path), "one")
    assert path.read_text() == "one"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(FileExistsError, match="--force"):
        atomic_write_text(str(path), "two")
    atomic_write_text(str(path), "two", overwrite=True)
    assert path.read_text() == "two"


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "ckpt.bin"
    path.write_bytes(b"good")

    def broken(temp):
        with open(temp, "wb") as handle:
            handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(str(path), broken, overwrite=True)
    assert path.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]
