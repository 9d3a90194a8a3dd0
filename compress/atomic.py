"""Atomic file writes: a reader never sees a half-written checkpoint, engine or result.

Everything the project writes that a crash could corrupt (checkpoints, engines, result tables,
images) goes through `atomic_write`: write to a temporary file in the same directory, then
``os.replace`` it onto the target, which is atomic on POSIX and Windows. Existing files are only
replaced with ``overwrite=True``. Standard library only, so the torch-free runtime (engines, app)
can use it too.
"""
import os
import tempfile
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str, write: Callable[[str], None], overwrite: bool = False) -> None:
    """Call ``write(temp_path)`` and rename the result onto ``path``.

    Raises FileExistsError (saying how to proceed) when ``path`` exists and ``overwrite`` is
    False. The file gets the usual permissions (0666 minus the umask), not mkstemp's 0600.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    os.close(fd)
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def atomic_write_bytes(path: str, data: bytes, overwrite: bool = False) -> None:
    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    atomic_write(path, write, overwrite)


def atomic_write_text(path: str, text: str, overwrite: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), overwrite)
