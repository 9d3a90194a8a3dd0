"""Train the mIoU segmenter (``compress.metrics.segmenter``) on a label-map dataset's photos -> labels.

    python -m compress.train_segmenter --config configs/segmenter_facades.toml
    python -m compress.train_segmenter --config configs/segmenter_facades.toml --max-steps 300 --output R
    python -m compress.train_segmenter --data-root=../shared/datasets/camvid --palette=camvid \
        --resolution=192x256

The run folder holds ``config.toml`` (resolved settings), ``train_state.pt`` (everything needed
to resume: weights, optimiser, step, history; loaded with ``weights_only=True``),
``best.safetensors`` (the weights with the best validation mIoU, metadata in the header) and
``metrics.json`` (validation mIoU per epoch). Rerunning the same command resumes where it
stopped (Ctrl-C saves first); ``--force`` starts over. The data order and augmentation are a
function of (seed, epoch, index) and the LR of the step, so a resumed run matches an
uninterrupted one.
"""
import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from compress.common.atomic import atomic_write
from compress.common.config import (check_ranges, config_dict, describe_config, load_config, option,
                                    save_config)
from compress.data import build_dataset, make_dataloader
from compress.metrics import confusion_matrix, iou_per_class
from compress.common.palettes import load_palette
from compress.models.profile import parse_size
from compress.metrics.segmenter import UNetSegmenter, count_params, save_segmenter, segmenter_metadata
from compress.training.distributed import resolve_device

STATE_FILE, BEST_FILE = "train_state.pt", "best.safetensors"
CONFIG_FILE, METRICS_FILE = "config.toml", "metrics.json"
STATE_FORMAT = "gan-compression-segmenter-train/1"
# Settings that may change between a run and its resumption (they do not alter what was learnt).
RESUMABLE_CHANGES = ("max_steps", "epochs", "output", "num_workers", "device", "checkpoint_every")


@dataclass
class SegmenterConfig:
    data_root: str = option("../shared/datasets/facades/256", "dataset folder (holds <split>/ folders)")
    mode: str = option("labelmap", "dataset layout: labelmap or cityscapes (see compress.data)")
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
    epochs: int = option(30, "epochs to train (used when max_steps is 0)")
    max_steps: int = option(0, "total optimisation steps (0: epochs * steps per epoch)")
    checkpoint_every: int = option(100, "save train_state.pt every N steps (and after each epoch)")
    max_train_items: Optional[int] = option(None, "use only the first N training images (smoke tests)")
    max_val_items: Optional[int] = option(None, "validate on the first N images only")
    num_workers: int = option(0, "DataLoader worker processes")
    seed: int = option(0, "seed for weights, data order and augmentation")
    device: str = option("auto", "cpu, cuda, cuda:N or auto")
    output: str = option("runs/segmenter/facades", "run folder")

    def __post_init__(self):
        check_ranges(self)
        parse_size(self.resolution)
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.max_steps < 0 or self.epochs < 0 or (self.max_steps == 0 and self.epochs == 0):
            raise ValueError("set max_steps > 0 or epochs > 0")
        if self.batch_size < 1 or self.checkpoint_every < 1 or self.load_scale < 1.0:
            raise ValueError("batch_size and checkpoint_every must be >= 1, load_scale >= 1")


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

def train(cfg: SegmenterConfig, force: bool = False) -> int:
    """Train (or resume) into ``cfg.output``; returns an exit code (130 when interrupted)."""
    out = cfg.output
    state_path, best_path = os.path.join(out, STATE_FILE), os.path.join(out, BEST_FILE)
    if force:
        for name in (STATE_FILE, BEST_FILE, CONFIG_FILE, METRICS_FILE):
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    state = _load_state(state_path) if os.path.isfile(state_path) else None
    if state is None and os.path.exists(best_path):
        raise ValueError(f"{best_path} exists but {state_path} does not; pass --force to overwrite "
                         "or choose another --output")
    if state is not None:
        saved = json.loads(state["config_json"])
        changed = {k: (saved.get(k), v) for k, v in config_dict(cfg).items()
                   if k not in RESUMABLE_CHANGES and saved.get(k) != v}
        if changed:
            raise ValueError(f"{state_path} was trained with other settings {changed} (saved, now); "
                             "use the same settings to resume, another --output, or --force")

    palette = load_palette(cfg.palette)
    resolution = parse_size(cfg.resolution)
    load_hw = tuple(int(round(s * cfg.load_scale)) for s in resolution)
    train_set = build_dataset(cfg.mode, cfg.data_root, cfg.train_split, palette=palette, load_size=load_hw,
                              crop_size=resolution, flip=cfg.flip, random_crop=True,
                              max_items=cfg.max_train_items, seed=cfg.seed)
    val_set = build_dataset(cfg.mode, cfg.data_root, cfg.val_split, palette=palette, load_size=resolution,
                            max_items=cfg.max_val_items, seed=cfg.seed)
    loader = make_dataloader(train_set, cfg.batch_size, shuffle=True, num_workers=cfg.num_workers,
                             seed=cfg.seed, drop_last=len(train_set) >= cfg.batch_size)
    steps_per_epoch = len(loader)
    total = cfg.max_steps or cfg.epochs * steps_per_epoch

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = UNetSegmenter(palette.num_classes, cfg.width, cfg.depth, cfg.stem_stride).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best_miou = 0, -1.0
    history: List[Dict[str, Any]] = []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, best_miou = int(state["step"]), float(state["best_miou"])
        history = json.loads(state["history_json"])
        print(f"resuming {out} at step {step}/{total} (best val mIoU {best_miou:.2f})")
    if step >= total:
        print(f"{out}: already trained to step {step} (best val mIoU {best_miou:.2f}); "
              "raise --max-steps/--epochs to continue or pass --force to retrain")
        return 0
    save_config(cfg, os.path.join(out, CONFIG_FILE))
    print(f"segmenter: {count_params(model) / 1e6:.2f}M params, {len(train_set)} train / {len(val_set)} val "
          f"images at {resolution[0]}x{resolution[1]}, {steps_per_epoch} steps per epoch, {total} steps")

    def checkpoint() -> None:
        _save_state(state_path, model, optimizer, step, best_miou, history, cfg)

    def validate(epoch: int, train_loss: float) -> None:
        nonlocal best_miou
        result = evaluate(model, val_set, palette.num_classes, palette.ignore_id, device)
        history.append({"epoch": epoch, "step": step, "train_loss": round(train_loss, 4),
                        "val_miou": round(result["miou"], 3),
                        "val_pixel_accuracy": round(result["pixel_accuracy"], 3), "val_iou": result["iou"]})
        if result["miou"] > best_miou:
            best_miou = result["miou"]
            meta = segmenter_metadata(model, cfg.palette, resolution, palette.ignore_id, val_miou=best_miou,
                                      step=step, epoch=epoch, data_root=cfg.data_root,
                                      val_split=cfg.val_split)
            save_segmenter(model, best_path, meta, overwrite=True)
        _write_json(os.path.join(out, METRICS_FILE), {"best_val_miou": best_miou, "history": history})
        tqdm.write(f"epoch {epoch} step {step}: val mIoU {result['miou']:.2f} (best {best_miou:.2f}), "
                   f"pixel accuracy {result['pixel_accuracy']:.1f}")

    model.train()
    bar = tqdm(total=total, initial=step, desc="segmenter", unit="step", dynamic_ncols=True)
    losses: List[float] = []
    try:
        while step < total:
            epoch = step // steps_per_epoch
            loader.sampler.set_epoch(epoch, skip=(step % steps_per_epoch) * cfg.batch_size)
            for batch in loader:
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(cfg, step, total)
                logits = model(batch["B"].to(device))
                loss = F.cross_entropy(logits, batch["label"].to(device),
                                       ignore_index=-100 if palette.ignore_id is None else palette.ignore_id)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                if step % cfg.checkpoint_every == 0:
                    checkpoint()
                if step >= total:
                    break
            if step % steps_per_epoch == 0 or step >= total:
                validate(epoch, float(np.mean(losses[-steps_per_epoch:])) if losses else float("nan"))
                checkpoint()
    except KeyboardInterrupt:
        bar.close()
        checkpoint()
        print(f"\ninterrupted: saved step {step} to {state_path}; rerun the same command to resume")
        return 130
    bar.close()
    print(f"done: best val mIoU {best_miou:.2f} -> {best_path}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m compress.train_segmenter",
        description="Train the small U-Net that scores generated images by mIoU (facades, camvid, ...). "
                    "Settings come from --config TOML, then --key=value overrides.",
        epilog="examples:\n"
               "  python -m compress.train_segmenter --config configs/segmenter_facades.toml\n"
               "  python -m compress.train_segmenter --max-steps 300 --output runs/segmenter/facades128\n"
               "  python -m compress.train_segmenter --config configs/segmenter_camvid.toml --device=cuda\n\n"
               "settings (--key=value):\n" + describe_config(SegmenterConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="TOML file of settings (see configs/segmenter_*.toml)")
    parser.add_argument("--output", help="run folder (overrides the config)")
    parser.add_argument("--max-steps", type=int, help="total optimisation steps")
    parser.add_argument("--epochs", type=int, help="epochs (when max_steps is 0)")
    parser.add_argument("--force", action="store_true",
                        help="discard a previous run in --output and start over")
    args, overrides = parser.parse_known_args(argv)
    overrides = list(overrides)
    for key in ("output", "max_steps", "epochs"):
        if getattr(args, key) is not None:
            overrides.append(f"--{key}={getattr(args, key)}")
    try:
        cfg = load_config(SegmenterConfig, args.config, overrides)
        return train(cfg, force=args.force)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
