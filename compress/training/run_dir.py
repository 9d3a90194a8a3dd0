"""The run folder of a training stage: start over, refuse to mix runs, record the settings.

Every trainer (teacher training and the GAN Compression stages) writes its resolved config beside
its outputs and resumes automatically when rerun. Before it starts, `prepare_run_dir` makes sure
that a resumed run keeps the settings it was started with (only harmless ones such as step
intervals may change) and that outputs of an earlier run are never overwritten silently.
"""
import os
import shutil
from typing import Sequence

from compress.config import diff_configs, load_config, save_config
from compress.training.engine import STATE_FILE

CONFIG_FILE = "config.toml"
# settings that may change when a run resumes (they do not alter what is trained)
RESUMABLE_CHANGES = ("max_steps", "save_every_steps", "log_every_steps", "image_every_steps",
                     "num_workers", "device", "cpu_threads", "tensorboard", "eval_every_epochs",
                     "eval_max_images", "output_dir")


def prepare_run_dir(cfg, outputs: Sequence[str], results: Sequence[str], force: bool, command: str,
                    resumable_changes: Sequence[str] = RESUMABLE_CHANGES) -> None:
    """Delete ``outputs`` of ``cfg.output_dir`` (``force``), or check that a resumed run has the
    saved settings, or refuse to overwrite ``results`` of a run with no checkpoint; then write
    the resolved config. ``command`` is the module that resumes it (``compress.train``)."""
    run_dir = cfg.output_dir
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
