"""The run folder of a training stage: start over, refuse to mix runs, record the settings.

Every trainer (teacher training and the GAN Compression stages) writes its resolved config beside
its outputs and resumes automatically when rerun. Before it starts, `prepare_run_dir` makes sure
that a resumed run keeps the settings it was started with (only harmless ones such as step
intervals may change) and that outputs of an earlier run are never overwritten silently.
It also takes an advisory lock on the folder (``.lock``, POSIX ``flock``): a second run started on
the same ``output_dir`` while the first one trains refuses with a clear message instead of
"resuming" and writing the same files. The lock is released when the run ends (`release`), or
by the operating system when the process dies, so a ``kill -9`` leaves nothing to clean up.
"""
import os
import shutil
from typing import Dict, Sequence

from compress.common.config import diff_configs, load_config, save_config
from compress.common.settings import RESUMABLE_CHANGES
from compress.training.engine import STATE_FILE

CONFIG_FILE = "config.toml"
LOCK_FILE = ".lock"
_held: Dict[str, int] = {}  # run folder (absolute) -> file descriptor of this process's lock


def prepare_run_dir(cfg, outputs: Sequence[str], results: Sequence[str], force: bool, command: str,
                    resumable_changes: Sequence[str] = RESUMABLE_CHANGES) -> None:
    """Delete ``outputs`` of ``cfg.output_dir`` (``force``), or check that a resumed run has the
    saved settings, or refuse to overwrite ``results`` of a run with no checkpoint; then write
    the resolved config. ``command`` is the module that resumes it (``compress.train``)."""
    run_dir = cfg.output_dir
    lock(run_dir, command)
    saved = os.path.join(run_dir, CONFIG_FILE)
    if force:
        for name in outputs:
            path = os.path.join(run_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    elif os.path.isfile(os.path.join(run_dir, STATE_FILE)) and os.path.isfile(saved):
        changed = {k: v for k, v in diff_configs(load_config(type(cfg), saved), cfg).items()
                   if k not in resumable_changes}
        if changed:
            lines = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
            raise ValueError(f"{run_dir} holds a run with other settings ({lines}); resume it with the "
                             f"settings of {saved}, choose another output_dir, or pass --force to start over")
    elif any(os.path.exists(os.path.join(run_dir, name)) for name in results):
        raise ValueError(f"{run_dir} holds outputs of an earlier run but no checkpoint to resume; choose "
                         "another output_dir or pass --force to overwrite them")
    save_config(cfg, saved, header=f"resolved configuration of this run (python -m {command} {saved} "
                                   "resumes it)")


def lock(run_dir: str, command: str = "compress.train") -> None:
    """Take the folder's advisory lock for this process (again: no-op); ValueError naming the
    other process when a run already holds it. Without ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        return
    key = os.path.abspath(run_dir)
    if key in _held:
        return
    try:
        os.makedirs(run_dir, exist_ok=True)
        fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)  # novermin
    except OSError as error:
        path = os.path.join(run_dir, LOCK_FILE)
        raise OSError(f"could not write {path}: {error.strerror or error}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # novermin (int flags, not a union type)
    except OSError:
        owner = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise ValueError(f"{run_dir} is in use by another running {command} (pid {owner}); wait for it to "
                         "finish or stop it, or choose another output_dir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    _held[key] = fd


def release(run_dir: str) -> None:
    """Release this process's lock on ``run_dir`` (no-op when it holds none)."""
    fd = _held.pop(os.path.abspath(run_dir), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
