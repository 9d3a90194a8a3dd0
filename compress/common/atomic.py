"""Atomic file writes: a reader never sees a half-written checkpoint, engine or result.

Everything the project writes that a crash could corrupt (checkpoints, engines, result tables,
images) goes through `atomic_write`: write to a temporary file in the same directory, then move
it onto the target, which is atomic on POSIX and Windows. Existing files are only replaced with
``overwrite=True``; without it the move itself refuses an existing target (a hard link, which
fails if the name exists), so two writers racing for one new file cannot silently replace each
other. Temporary files carry the writer's process id; one left behind by a killed writer
(``kill -9`` mid-write) is removed by the next write of the same target. Failures (full disk,
read-only folder) raise an OSError whose message is one line naming the path. Standard library
only, so the torch-free runtime (engines, app) can use it too.
"""
import errno
import os
import tempfile
import time
from typing import Callable

TEMP_PREFIX = ".tmp-"
STALE_UNKNOWN_S = 3600.0  # a temp file without a readable pid is stale after an hour


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists but belongs to someone else
        return True
    return True


def remove_stale_temps(path: str) -> int:
    """Delete temporary files of earlier writes of ``path`` whose writer is gone; returns how many."""
    directory = os.path.dirname(os.path.abspath(path))
    suffix = "-" + os.path.basename(path)
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(TEMP_PREFIX) and name.endswith(suffix)):
            continue
        pid_text = name[len(TEMP_PREFIX):].split("-", 1)[0]
        full = os.path.join(directory, name)
        try:
            stale = (not _pid_alive(int(pid_text))) if pid_text.isdigit() else (
                time.time() - os.path.getmtime(full) > STALE_UNKNOWN_S)
            if stale:
                os.remove(full)
                removed += 1
        except OSError:
            continue  # another process cleaned it up first, or it is not ours to remove
    return removed


def _describe(error: OSError, path: str, making_folder: bool = False) -> OSError:
    reason = error.strerror or str(error)
    if making_folder and isinstance(error, (FileExistsError, NotADirectoryError)):
        reason = f"a file stands where its folder {os.path.dirname(os.path.abspath(path))} should be"
    hint = {errno.ENOSPC: "free some space or write elsewhere",
            errno.EROFS: "the file system is read-only; write elsewhere",
            errno.EACCES: "no permission; write elsewhere or fix the folder's permissions",
            errno.EDQUOT: "disk quota exceeded; free some space"}.get(error.errno or 0, "")
    described = OSError(f"could not write {path}: {reason}" + (f" ({hint})" if hint else ""))
    described.errno = error.errno  # kept for callers; str() stays the one-line message
    return described


def _publish(temp: str, path: str, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # atomic create-if-absent: EEXIST when another writer got there first
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.exists(path):  # no hard links on this file system: check, then move
            raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it") from None
        os.replace(temp, path)
        return
    os.remove(temp)


def atomic_write(path: str, write: Callable[[str], None], overwrite: bool = False) -> None:
    """Call ``write(temp_path)`` and move the result onto ``path``.

    Raises FileExistsError (saying how to proceed) when ``path`` exists and ``overwrite`` is
    False, also when another writer creates it meanwhile. The file gets the usual permissions
    (0666 minus the umask), not mkstemp's 0600. OSErrors name ``path`` in one line.
    """
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        remove_stale_temps(path)
        fd, temp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-",
                                    suffix="-" + os.path.basename(path), dir=directory)
        os.close(fd)
    except OSError as error:  # incl. a file standing where the folder should be
        raise _describe(error, path, making_folder=True) from None
    try:
        write(temp)
        os.chmod(temp, 0o666 & ~_umask())
        _publish(temp, path, overwrite)
    except FileExistsError:
        raise
    except OSError as error:
        raise _describe(error, path) from None
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
