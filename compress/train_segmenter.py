"""Train the mIoU segmenter (``compress.metrics.segmenter``) on a label-map dataset's photos -> labels.

    python -m compress.train_segmenter configs/segmenter_facades.toml
    python -m compress.train_segmenter configs/segmenter_facades.toml --max_steps=300 --output_dir=R
    python -m compress.train_segmenter --dataroot=../shared/datasets/camvid --palette=camvid \
        --resolution=192x256

Like every command: a TOML config (positional), then ``--key=value`` overrides, ``--force`` to
start over. The run folder (``output_dir``, prepared by `compress.training.run_dir`: locked,
settings checked on resume) holds ``config.toml`` (resolved settings), ``train_state.pt``
(everything needed to resume: weights, optimiser, step, history; loaded with
``weights_only=True``), ``best.safetensors`` (the weights with the best validation mIoU, metadata
in the header) and ``metrics.json`` (validation mIoU per epoch). Rerunning the same command
resumes where it stopped (Ctrl-C saves first). The data order and augmentation are a function
of (seed, epoch, index) and the LR of the step, so a resumed run matches an uninterrupted one.

The shared `compress.training.engine.Trainer` is not used: its per-epoch linear LR decay and its
checkpoint format differ from this command's per-step poly decay and ``train_state.pt``, and
switching would change what is learnt and orphan existing checkpoints. Old setting names
(``data_root``, ``mode``, ``output``, ``epochs``) and ``--config FILE`` still work, with a note.
"""
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from compress.common.atomic import atomic_write
from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import (check_ranges, config_dict, config_from_dict, describe_config, option,
                                    read_toml, save_config)
from compress.common.palettes import Palette, load_palette
from compress.data import build_dataset, make_dataloader
from compress.metrics import confusion_matrix, iou_per_class
from compress.metrics.segmenter import UNetSegmenter, count_params, save_segmenter, segmenter_metadata
from compress.models.profile import parse_size
from compress.training import run_dir
from compress.training.distributed import resolve_device

COMMAND = "compress.train_segmenter"
STATE_FILE, BEST_FILE = "train_state.pt", "best.safetensors"
CONFIG_FILE, METRICS_FILE = run_dir.CONFIG_FILE, "metrics.json"
STATE_FORMAT = "gan-compression-segmenter-train/1"
OUTPUTS = (STATE_FILE, BEST_FILE, METRICS_FILE)  # what --force deletes (config.toml is rewritten)
# Settings that may change between a run and its resumption (they do not alter what was learnt).
RESUMABLE_CHANGES = ("max_steps", "nepochs", "output_dir", "num_workers", "device", "checkpoint_every")
# Names used before the settings followed the other commands' configs: old -> new.
LEGACY_KEYS = {"data_root": "dataroot", "mode": "dataset_mode", "output": "output_dir", "epochs": "nepochs"}
# Flags that took a separate value (``--max-steps 300``); now plain ``--key=value`` settings.
REMOVED_FLAGS = {"--output": "output_dir", "--max-steps": "max_steps", "--epochs": "nepochs"}


@dataclass
class SegmenterConfig:
    dataroot: str = option("../shared/datasets/facades/256", "dataset folder (holds <split>/ folders)")
    dataset_mode: str = option("labelmap", "dataset layout: labelmap or cityscapes (see compress.data)")
    palette: str = option("facades", "class palette name (assets/palettes)")
    train_split: str = option("train", "split to train on")
    val_split: str = option("val", "split to validate on (mIoU each epoch)")
    resolution: str = option("128", "training resolution: 128 or HEIGHTxWIDTH")
    load_scale: float = option(1.125, "resize to resolution * load_scale, then random-crop resolution")
    flip: bool = option(True, "random horizontal flips")
    width: int = option(16, "U-Net base width (16: 0.49M params)")
    depth: int = option(4, "U-Net levels")
    stem_stride: int = option(2, "1 or 2: stride of the first conv (2 is ~2x faster)")
    batch_size: int = option(8, "images per step")
    lr: float = option(2e-3, "AdamW learning rate, poly-decayed to 0 over the run")
    weight_decay: float = option(1e-4, "AdamW weight decay")
    nepochs: int = option(30, "epochs to train (used when max_steps is 0)")
    max_steps: int = option(0, "total optimisation steps (0: nepochs * steps per epoch)")
    checkpoint_every: int = option(100, "save train_state.pt every N steps (and after each epoch)")
    max_train_items: Optional[int] = option(None, "use only the first N training images (smoke tests)")
    max_val_items: Optional[int] = option(None, "validate on the first N images only")
    num_workers: int = option(0, "DataLoader worker processes")
    seed: int = option(0, "seed for weights, data order and augmentation")
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    output_dir: str = option("runs/segmenter/facades", "run folder")

    def __post_init__(self):
        check_ranges(self)
        parse_size(self.resolution)
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.max_steps < 0 or self.nepochs < 0 or (self.max_steps == 0 and self.nepochs == 0):
            raise ValueError("set max_steps > 0 or nepochs > 0")
        if self.batch_size < 1 or self.checkpoint_every < 1 or self.load_scale < 1.0:
            raise ValueError("batch_size and checkpoint_every must be >= 1, load_scale >= 1")


# ----------------------------------------------------------------------------- old setting names

def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def rename_legacy_keys(table: Dict[str, Any], where: str) -> Dict[str, Any]:
    """``table`` with the old key names replaced by the new ones, and one note on stderr naming
    them, so that files written before the rename keep working while their users learn the new
    names. Both spellings of one setting at once is an error (which one would win is a guess)."""
    old = [key for key in table if key in LEGACY_KEYS]
    if not old:
        return table
    for key in old:
        if LEGACY_KEYS[key] in table:
            raise ValueError(f"{where}: both {key} (old name) and {LEGACY_KEYS[key]} are set; keep "
                             f"{LEGACY_KEYS[key]} only")
    _note(f"{where}: deprecated setting name(s) "
          + ", ".join(f"{key} -> {LEGACY_KEYS[key]}" for key in old) + "; rename them")
    return {LEGACY_KEYS.get(key, key): value for key, value in table.items()}


def _removed_flag_error(argv: Sequence[str]) -> Optional[str]:
    """The error for a removed flag given with a separate value (``--max-steps 300``), showing
    the new spelling; checked before argparse, which would report the value as an unrecognised
    argument (or read it as the config file)."""
    for item in argv:
        if item in REMOVED_FLAGS:
            return (f"{item} VALUE is no longer accepted: write --{REMOVED_FLAGS[item]}=VALUE "
                    "(settings are given as --key=value)")
    return None


def _rename_legacy_overrides(overrides: Sequence[str]) -> List[str]:
    """``--output=R`` -> ``--output_dir=R``, ``--data-root=D`` -> ``--dataroot=D`` (with a note)."""
    renamed = []
    for item in overrides:
        key, sep, value = item[2:].partition("=")
        key = key.replace("-", "_")
        if key in LEGACY_KEYS:
            _note(f"--{key} is deprecated; use --{LEGACY_KEYS[key]}")
            item = f"--{LEGACY_KEYS[key]}{sep}{value}"
        renamed.append(item)
    return renamed


def load_segmenter_config(path: Optional[str], overrides: Sequence[str] = ()) -> SegmenterConfig:
    """`load_config` for this command, accepting the old setting names in the file and in the
    overrides (see `rename_legacy_keys`)."""
    overrides = _rename_legacy_overrides(overrides)
    table = rename_legacy_keys(read_toml(path), path) if path is not None else {}
    return config_from_dict(SegmenterConfig, table, path, overrides)


def _upgrade_run_config(folder: str) -> None:
    """Rewrite a run folder's ``config.toml`` saved with the old key names in the new ones, so
    that `run_dir.prepare_run_dir` can compare it with the current settings and a run started
    before the rename resumes. The file is rewritten by that call anyway."""
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isfile(path):
        return
    table = read_toml(path)
    if any(key in LEGACY_KEYS for key in table):
        saved = config_from_dict(SegmenterConfig, rename_legacy_keys(table, path), path)
        save_config(saved, path, header="resolved configuration of this run (setting names updated)")


# ----------------------------------------------------------------------------- pieces

def _lr_at(cfg: SegmenterConfig, step: int, total: int) -> float:
    return cfg.lr * (1.0 - min(step, total) / total) ** 0.9


def evaluate(model: UNetSegmenter, dataset, num_classes: int, ignore_id: Optional[int],
             device: torch.device, batch_size: int = 8) -> Dict[str, Any]:
    """Validation mIoU (percent) and per-class IoU of ``model`` on ``dataset`` photos ("B")."""
    was_training = model.training
    model.eval()
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    loader = make_dataloader(dataset, batch_size, shuffle=False)
    with torch.no_grad():
        for batch in loader:
            pred = model(batch["B"].to(device)).argmax(dim=1).cpu()
            matrix += confusion_matrix(pred, batch["label"], num_classes, ignore_id)
    model.train(was_training)
    iou = iou_per_class(matrix, ignore_id)
    valid = ~np.isnan(iou)
    return {"miou": float(np.nanmean(iou) * 100) if valid.any() else float("nan"),
            "iou": [None if math.isnan(v) else round(float(v) * 100, 2) for v in iou],
            "pixel_accuracy": float(np.trace(matrix) / max(matrix.sum(), 1) * 100)}


def _save_state(path: str, model, optimizer, step: int, best_miou: float, history: List[Dict[str, Any]],
                cfg: SegmenterConfig) -> None:
    state = {"format": STATE_FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "step": step, "best_miou": best_miou, "history_json": json.dumps(history),
             "config_json": json.dumps(config_dict(cfg))}
    atomic_write(path, lambda temp: torch.save(state, temp), overwrite=True)


def _load_state(path: str) -> Dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated file, not a checkpoint, pickled objects
        raise ValueError(f"{path}: cannot read the training state ({str(error).splitlines()[0]}); "
                         "delete it or pass --force to start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a segmenter training state; pass --force to start over")
    return state


def _write_json(path: str, data: Any) -> None:
    def write(temp: str) -> None:
        with open(temp, "w") as handle:
            json.dump(data, handle, indent=1)
    atomic_write(path, write, overwrite=True)


# ----------------------------------------------------------------------------- training

class _Data(NamedTuple):
    palette: Palette
    resolution: Tuple[int, int]
    train_set: Any
    val_set: Any
    loader: Any


def _build_data(cfg: SegmenterConfig) -> _Data:
    """Datasets and loader, built before the run folder is touched so that a wrong dataroot
    fails without creating (or locking) an output folder."""
    palette = load_palette(cfg.palette)
    resolution = parse_size(cfg.resolution)
    load_hw = tuple(int(round(s * cfg.load_scale)) for s in resolution)
    train_set = build_dataset(cfg.dataset_mode, cfg.dataroot, cfg.train_split, palette=palette,
                              load_size=load_hw, crop_size=resolution, flip=cfg.flip, random_crop=True,
                              max_items=cfg.max_train_items, seed=cfg.seed)
    val_set = build_dataset(cfg.dataset_mode, cfg.dataroot, cfg.val_split, palette=palette,
                            load_size=resolution, max_items=cfg.max_val_items, seed=cfg.seed)
    loader = make_dataloader(train_set, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                             seed=cfg.seed, drop_last=len(train_set) >= cfg.batch_size)
    return _Data(palette, resolution, train_set, val_set, loader)


class _Run:
    """One training run: the model, optimiser and counters that a checkpoint saves and restores.
    A class (not locals of one long function) so that the checkpoint, the validation and the
    loop share the counters without ``nonlocal`` and each stays short."""

    def __init__(self, cfg: SegmenterConfig, data: _Data, device: torch.device):
        self.cfg, self.data, self.device = cfg, data, device
        self.state_path = os.path.join(cfg.output_dir, STATE_FILE)
        self.best_path = os.path.join(cfg.output_dir, BEST_FILE)
        self.steps_per_epoch = len(data.loader)
        self.total = cfg.max_steps or cfg.nepochs * self.steps_per_epoch
        torch.manual_seed(cfg.seed)
        self.model = UNetSegmenter(data.palette.num_classes, cfg.width, cfg.depth, cfg.stem_stride).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step, self.best_miou = 0, -1.0
        self.history: List[Dict[str, Any]] = []
        self.losses: List[float] = []

    def resume(self, state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.best_miou = int(state["step"]), float(state["best_miou"])
        self.history = json.loads(state["history_json"])

    def checkpoint(self) -> None:
        _save_state(self.state_path, self.model, self.optimizer, self.step, self.best_miou, self.history,
                    self.cfg)

    def validate(self, epoch: int, train_loss: float) -> None:
        """Score the validation split; keep the weights when they beat the best so far."""
        cfg, palette = self.cfg, self.data.palette
        result = evaluate(self.model, self.data.val_set, palette.num_classes, palette.ignore_id, self.device)
        self.history.append({"epoch": epoch, "step": self.step, "train_loss": round(train_loss, 4),
                             "val_miou": round(result["miou"], 3),
                             "val_pixel_accuracy": round(result["pixel_accuracy"], 3),
                             "val_iou": result["iou"]})
        if result["miou"] > self.best_miou:
            self.best_miou = result["miou"]
            # the header key stays data_root: segmenter files written before the rename carry it
            meta = segmenter_metadata(self.model, cfg.palette, self.data.resolution, palette.ignore_id,
                                      val_miou=self.best_miou, step=self.step, epoch=epoch,
                                      data_root=cfg.dataroot, val_split=cfg.val_split)
            save_segmenter(self.model, self.best_path, meta, overwrite=True)
        _write_json(os.path.join(cfg.output_dir, METRICS_FILE),
                    {"best_val_miou": self.best_miou, "history": self.history})
        tqdm.write(f"epoch {epoch} step {self.step}: val mIoU {result['miou']:.2f} "
                   f"(best {self.best_miou:.2f}), pixel accuracy {result['pixel_accuracy']:.1f}")

    def train_step(self, batch: Dict[str, Any]) -> float:
        """One optimisation step at the poly-decayed LR of the current step (a function of the
        step alone, so a resumed run sets the same LR as an uninterrupted one)."""
        for group in self.optimizer.param_groups:
            group["lr"] = _lr_at(self.cfg, self.step, self.total)
        ignore_id = self.data.palette.ignore_id
        logits = self.model(batch["B"].to(self.device))
        loss = F.cross_entropy(logits, batch["label"].to(self.device),
                               ignore_index=-100 if ignore_id is None else ignore_id)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return loss.item()

    def train_epoch(self, bar: tqdm) -> None:
        """The rest of the current epoch (all of it, unless resuming mid-epoch), then validate
        and checkpoint at its end or at the last step."""
        spe = self.steps_per_epoch
        epoch = self.step // spe
        self.data.loader.sampler.set_epoch(epoch, skip=(self.step % spe) * self.cfg.batch_size)
        for batch in self.data.loader:
            self.losses.append(self.train_step(batch))
            bar.update(1)
            bar.set_postfix(loss=f"{self.losses[-1]:.3f}")
            if self.step % self.cfg.checkpoint_every == 0:
                self.checkpoint()
            if self.step >= self.total:
                break
        if self.step % spe == 0 or self.step >= self.total:
            self.validate(epoch, float(np.mean(self.losses[-spe:])) if self.losses else float("nan"))
            self.checkpoint()

    def fit(self) -> int:
        """Train to ``total`` steps; 0 when done, 130 after Ctrl-C (saved first)."""
        self.model.train()
        bar = tqdm(total=self.total, initial=self.step, desc="segmenter", unit="step", dynamic_ncols=True)
        try:
            while self.step < self.total:
                self.train_epoch(bar)
        except KeyboardInterrupt:
            bar.close()
            self.checkpoint()
            print(f"\ninterrupted: saved step {self.step} to {self.state_path}; rerun the same command "
                  "to resume")
            return 130
        bar.close()
        print(f"done: best val mIoU {self.best_miou:.2f} -> {self.best_path}")
        return 0


def prepare_run_dir(cfg: SegmenterConfig, force: bool) -> None:
    """The shared run-folder rules (`compress.training.run_dir`): lock it, start over with
    ``force``, refuse to resume with other settings or to overwrite results without a checkpoint,
    and record the resolved settings. A config saved before the rename is updated first."""
    run_dir.lock(cfg.output_dir, COMMAND)
    if not force:
        _upgrade_run_config(cfg.output_dir)
    run_dir.prepare_run_dir(cfg, OUTPUTS, (BEST_FILE, METRICS_FILE), force, COMMAND, RESUMABLE_CHANGES)


def train(cfg: SegmenterConfig, force: bool = False) -> int:
    """Train (or resume) into ``cfg.output_dir``; returns an exit code (130 when interrupted)."""
    data = _build_data(cfg)
    try:
        prepare_run_dir(cfg, force)
        state_path = os.path.join(cfg.output_dir, STATE_FILE)
        state = _load_state(state_path) if os.path.isfile(state_path) else None
        run = _Run(cfg, data, resolve_device(cfg.device))
        if state is not None:
            run.resume(state)
            print(f"resuming {cfg.output_dir} at step {run.step}/{run.total} "
                  f"(best val mIoU {run.best_miou:.2f})")
        if run.step >= run.total:
            print(f"{cfg.output_dir}: already trained to step {run.step} "
                  f"(best val mIoU {run.best_miou:.2f}); raise --max_steps or --nepochs to continue, "
                  "or pass --force to retrain")
            return 0
        height, width = data.resolution
        print(f"segmenter: {count_params(run.model) / 1e6:.2f}M params, {len(data.train_set)} train / "
              f"{len(data.val_set)} val images at {height}x{width}, {run.steps_per_epoch} steps per epoch, "
              f"{run.total} steps")
        return run.fit()
    finally:
        run_dir.release(cfg.output_dir)


# ----------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python -m compress.train_segmenter configs/segmenter_facades.toml
  python -m compress.train_segmenter configs/segmenter_facades.toml --max_steps=300 \\
      --output_dir=runs/segmenter/facades128
  python -m compress.train_segmenter configs/segmenter_camvid.toml --device=cuda --num_workers=3

Rerunning the same command resumes from <output_dir>/train_state.pt; Ctrl-C saves and stops;
--force starts over. Resuming with other settings is refused (max_steps, nepochs, output_dir,
num_workers, device and checkpoint_every may change).
Deprecated, still accepted with a note: --config FILE (give FILE first instead) and the old
setting names data_root, mode, output, epochs (now dataroot, dataset_mode, output_dir, nepochs).

settings (TOML keys, or --key=value):
"""


def _config_path(args) -> Optional[str]:
    """The config file: positional, or the deprecated ``--config FILE`` (with a note)."""
    if args.config_option is None:
        return args.config
    if args.config is not None:
        raise ValueError(f"two config files ({args.config} and --config {args.config_option}); give one, "
                         "first on the command line")
    _note(f"--config FILE is deprecated; give the file first: python -m {COMMAND} "
          f"{args.config_option} [--key=value ...]")
    return args.config_option


def main(argv: Optional[List[str]] = None) -> int:
    parser = command_parser(
        f"python -m {COMMAND}",
        "Train the small U-Net that scores generated images by mIoU (facades, camvid, ...). "
        "Settings come from the TOML config, then --key=value overrides; the best weights go to "
        "<output_dir>/best.safetensors.",
        EXAMPLES + describe_config(SegmenterConfig),
        config_help="TOML config file (see configs/segmenter_*.toml)",
        force_help="start over: delete the checkpoint and outputs in output_dir")
    parser.add_argument("--config", dest="config_option", metavar="FILE",
                        help="deprecated spelling of the positional config file")
    argv = sys.argv[1:] if argv is None else list(argv)
    removed = _removed_flag_error(argv)
    if removed is not None:
        print(f"error: {removed}", file=sys.stderr)
        return 2
    args, overrides = parse_command(parser, argv)
    return run_command(lambda: train(load_segmenter_config(_config_path(args), overrides), force=args.force))


if __name__ == "__main__":
    sys.exit(main())
