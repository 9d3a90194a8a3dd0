import os
import stat

import pytest

from compress.common.atomic import atomic_write, atomic_write_text


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


def test_no_overwrite_holds_when_another_writer_creates_the_file_meanwhile(tmp_path):
    """Both writers pass the exists-check; the second must not silently replace the first."""
    path = tmp_path / "result.json"

    def slow_writer(temp):
        with open(temp, "w") as handle:
            handle.write("second")
        atomic_write_text(str(path), "first")  # the other writer finishes in between

    with pytest.raises(FileExistsError, match="exists"):
        atomic_write(str(path), slow_writer)
    assert path.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp left behind


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has exited
    stale = tmp_path / f".tmp-{dead}-abc123-model.onnx"
    live = tmp_path / f".tmp-{os.getpid()}-def456-model.onnx"  # a writer still running: kept
    other = tmp_path / f".tmp-{dead}-xyz-other.onnx"  # another target's temp: not ours to touch
    for temp in (stale, live, other):
        temp.write_bytes(b"partial")
    atomic_write_text(str(tmp_path / "model.onnx"), "done")
    assert not stale.exists() and live.exists() and other.exists()


def test_unwritable_folder_gives_one_line_naming_the_path(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(str(folder), os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(OSError) as error:
            atomic_write_text(str(folder / "out.json"), "x")
        message = str(error.value)
        assert "could not write" in message and "out.json" in message and "\n" not in message
    finally:
        folder.chmod(0o700)


def test_read_only_file_system_gives_one_line_naming_the_path(tmp_path, monkeypatch):
    """As root (CI) no folder is unwritable, so the read-only file system is simulated."""
    import errno

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(os, "link", read_only)
    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(OSError, match="could not write .*out.json: Read-only file system \\(the file"):
        atomic_write_text(str(tmp_path / "out.json"), "x")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(OSError, match="could not write .*a_file/out.json"):
        atomic_write_text(str(blocker / "out.json"), "x")


def test_full_disk_gives_one_line_naming_the_path(tmp_path):
    import errno

    def full(temp):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError, match="could not write .*ckpt.bin: No space left on device \\(free some"):
        atomic_write(str(tmp_path / "ckpt.bin"), full)
    assert list(tmp_path.iterdir()) == []
