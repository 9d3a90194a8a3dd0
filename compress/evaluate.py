"""Score trained generators side by side on a validation split: FID, KID, mIoU, PSNR, MACs.

    python -m compress.evaluate runs/facades_pix2pix/G_best.safetensors \\
        runs/facades_compress/compressed.safetensors --names=teacher,student \\
        --dataroot=../shared/datasets/facades/256 --segmenter=runs/segmenter/facades/best.safetensors \\
        --output=runs/facades_eval.json --grid=docs/facades-grid.png

This is the model-card command: every generator translates the same validation inputs at its
own resolution (metadata ``resolution``, or ``size``), and each gets
  fid, kid            Inception pool3 statistics of its outputs vs the real photos (offline
                      TorchScript Inception, `compress.metrics`); KID is the less biased one for
                      the few tens of images of a small validation split
  miou, pixel_acc     (percent) a segmenter (`compress.train_segmenter`) run on its outputs, scored against
                      the input label maps (label-map datasets); the segmenter on the real photos
                      is reported once as the ceiling
  psnr_vs_real        PSNR of outputs vs the real photos (paired data)
  psnr_vs_reference   PSNR vs the outputs of the reference generator (default: the first one), the
                      compressed-vs-original fidelity of the paper's search
  macs, true_macs, params
  *_interval, miou_diff(_interval), kid_ratio(_interval)
                      paired bootstrap (``bootstrap`` resamples of the items, seeded): a
                      ``confidence`` interval of each generator's mIoU and KID, and of its mIoU
                      difference and KID ratio against the first generator (the baseline), all
                      generators scored on the same resampled items (`compress.metrics.bootstrap`)
``split = "train"`` with ``holdout_items`` scores the training pairs that the compression stages
held out (same ``holdout_items`` / ``holdout_seed``): the place to choose between students
without looking at validation scores.
The JSON (``output``, written atomically; an existing file needs ``--force``) holds every number
and the settings; a Markdown table is printed. ``grid`` writes a picture: one row per
validation image, columns input | each generator | real photo.
"""
import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import describe_config, load_config, option
from compress.common.settings import DatasetSettings, DeviceSettings

METRICS = ("fid", "kid", "miou", "psnr")
KID_SUBSET_SIZE = 1000  # kid_from_features' default subset size


@dataclass
class EvaluateConfig(DeviceSettings, DatasetSettings):
    """The dataset and device (`compress.common.settings`) plus what only scoring has. The palette
    defaults to the first generator's metadata."""
    # the default dataset here is a label-map set (the demo's facades), not an aligned one
    dataset_mode: str = option("labelmap", "labelmap | aligned | cityscapes (paired datasets)")
    generators: str = option("", "comma-separated generator checkpoints (.safetensors); also positional")
    names: Optional[str] = option(None, "comma-separated display names (default: file names)")
    split: str = option("val", "split to score")
    max_items: Optional[int] = option(None, "score only the first N items")
    holdout_items: int = option(0, "score only the N training items the compression stages held out "
                                   "(with split = train; same value as their holdout_items)")
    holdout_seed: int = option(0, "seed of that held-out selection (the stages' holdout_seed)")
    size: Optional[int] = option(None, "input width (default: each generator's metadata resolution)")
    metrics: str = option("fid,kid,miou,psnr", "comma-separated subset of fid, kid, miou, psnr")
    segmenter: Optional[str] = option(None, "segmenter checkpoint for miou (compress.train_segmenter)")
    reference: Optional[str] = option(None, "generator whose outputs psnr_vs_reference compares with "
                                            "(default: the first one)")
    output: Optional[str] = option(None, "JSON file of the results")
    grid: Optional[str] = option(None, "PNG of input | generators | real for the first grid_rows items")
    grid_rows: int = option(4, "validation items in the grid")
    grid_scale: int = option(2, "upscaling of the grid cells (nearest neighbour)")
    kid_subsets: int = option(100, "KID subsets (only matter with more than 1000 items)")
    bootstrap: int = option(1000, "paired bootstrap resamples for the intervals (0: no intervals)")
    bootstrap_seed: int = option(0, "seed of the bootstrap resamples")
    confidence: float = option(0.9, "coverage of the bootstrap intervals")
    batch_size: int = option(8, "images per forward pass")

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.metric_list) - set(METRICS))
        if unknown:
            raise ValueError(f"metrics: unknown {', '.join(unknown)}; choose from {', '.join(METRICS)}")
        if self.dataset_mode == "unaligned":
            raise ValueError("compress.evaluate scores paired validation data; unaligned (CycleGAN) sets "
                             "have no per-input target")
        if "miou" in self.metric_list and not self.segmenter:
            raise ValueError("metrics include miou: pass --segmenter=PATH (python -m "
                             "compress.train_segmenter), or leave miou out (--metrics=fid,kid,psnr)")
        if self.grid_rows < 1 or self.grid_scale < 1 or self.batch_size < 1:
            raise ValueError("grid_rows, grid_scale and batch_size must be >= 1")
        if self.bootstrap < 0 or self.holdout_items < 0:
            raise ValueError("bootstrap and holdout_items must be >= 0")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.9), got {self.confidence}")

    @property
    def metric_list(self) -> List[str]:
        return [m.strip() for m in self.metrics.split(",") if m.strip()]

    @property
    def generator_list(self) -> List[str]:
        return [g.strip() for g in self.generators.split(",") if g.strip()]


# ----------------------------------------------------------------------------- evaluation

def _translate(model: torch.nn.Module, inputs: torch.Tensor, device: torch.device,
               batch_size: int) -> np.ndarray:
    from compress.metrics import to_uint8_images
    outputs = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            outputs.append(to_uint8_images(model(inputs[start:start + batch_size].to(device)).float().cpu()))
    return np.concatenate(outputs)


class _Split:
    """The validation items at one input width: inputs in [-1, 1], real photos (uint8), label ids
    (or None), and the real photos' Inception features once computed."""

    def __init__(self, cfg: EvaluateConfig, palette: Optional[str], size: Optional[int]):
        from compress.data import build_dataset, holdout_split
        from compress.metrics import to_uint8_images
        common = dict(direction=cfg.direction, palette=palette, input_encoding=cfg.input_encoding,
                      instance_edges=cfg.instance_edges)
        stems, max_items = None, cfg.max_items
        if cfg.holdout_items:  # the stages' held-out selection: same listing, same seed
            listing = build_dataset(cfg.dataset_mode, cfg.dataroot, cfg.split, max_items=max_items, **common)
            _, stems = holdout_split(listing.stems, cfg.holdout_items, cfg.holdout_seed)
            max_items = None
        dataset = build_dataset(cfg.dataset_mode, cfg.dataroot, cfg.split, stems=stems, max_items=max_items,
                                load_size=size, flip=False, random_crop=False, **common)
        if len(dataset) < 2:
            raise ValueError(f"{cfg.dataroot}/{cfg.split}: FID/KID need at least 2 items, "
                             f"found {len(dataset)}")
        self.stems = list(dataset.stems)
        items = [dataset[i] for i in range(len(dataset))]
        self.inputs = torch.stack([item["A"] for item in items])
        self.reals = to_uint8_images(torch.stack([item["B"] for item in items]))
        self.labels = np.stack([item["label"].numpy() for item in items]) if "label" in items[0] else None
        self.real_features: Optional[np.ndarray] = None
        self.reference: Optional[np.ndarray] = None


def _check_inputs(cfg: EvaluateConfig, force: bool) -> List[str]:
    """The display names; ValueError / FileExistsError for missing inputs or existing outputs."""
    paths = cfg.generator_list
    if not paths:
        raise ValueError("no generators given: python -m compress.evaluate A.safetensors [B.safetensors ...]")
    names = [n.strip() for n in cfg.names.split(",")] if cfg.names else [
        os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise ValueError(f"--names must give {len(paths)} distinct names, one per generator; got {names}")
    for path in paths + ([cfg.reference] if cfg.reference else []):
        if not os.path.isfile(path):
            raise ValueError(f"{path}: generator checkpoint not found")
    for target in (cfg.output, cfg.grid):
        if target and os.path.exists(target) and not force:
            raise FileExistsError(f"{target} exists; pass --force to overwrite it")
    return names


def _score(cfg: EvaluateConfig, model, path: str, split: _Split, fakes: np.ndarray, device, tools,
           stats: Dict[str, Any], bar) -> Dict[str, Any]:
    """One generator's row (and its per-item bootstrap statistics in ``stats``)."""
    from compress.metrics import fid_from_features, inception_features, miou, pixel_accuracy, psnr
    from compress.metrics.bootstrap import KidStatistic, MiouStatistic
    from compress.models.profile import count_macs
    metrics, palette, segmenter, reference_model = tools
    row: Dict[str, Any] = {"path": path, "resolution": list(fakes.shape[1:3]), "images": len(fakes)}
    row.update(count_macs(model, (1, model.input_nc, fakes.shape[1], fakes.shape[2])))
    if "psnr" in metrics:
        row["psnr_vs_real"] = psnr(fakes, split.reals)
        if split.reference is None:  # the first generator at this size, unless --reference
            split.reference = fakes if reference_model is None else _translate(
                reference_model.to(device), split.inputs, device, cfg.batch_size)
        row["psnr_vs_reference"] = psnr(fakes, split.reference)
    if "fid" in metrics or "kid" in metrics:
        bar.set_postfix_str("inception features")
        if split.real_features is None:
            split.real_features = inception_features(split.reals, device=str(device))
        features = inception_features(fakes, device=str(device))
        if "fid" in metrics:
            row["fid"] = fid_from_features(features, split.real_features)
        if "kid" in metrics:
            stats["kid"] = KidStatistic(features, split.real_features)
            if len(features) <= KID_SUBSET_SIZE:  # every subset would be the full set: compute it once
                row["kid"] = stats["kid"](np.arange(len(features)))
            else:
                from compress.metrics import kid_from_features
                row["kid"], _ = kid_from_features(features, split.real_features, subsets=cfg.kid_subsets,
                                                  subset_size=KID_SUBSET_SIZE)
    if segmenter is not None and split.labels is not None:
        from compress.metrics.segmenter import segment
        bar.set_postfix_str("segmenting")
        predicted = np.asarray(segment(segmenter, fakes))
        scoring = (split.labels, palette.num_classes, palette.ignore_id)
        row["miou"], row["pixel_acc"] = miou(predicted, *scoring), pixel_accuracy(predicted, *scoring)
        stats["miou"] = MiouStatistic(predicted, *scoring)
    return row


def _ceiling(segmenter, split: _Split, palette) -> Dict[str, float]:
    """The segmenter on the real photos: the best mIoU a generator can reach."""
    from compress.metrics import miou, pixel_accuracy
    from compress.metrics.segmenter import segment
    real_pred = np.asarray(segment(segmenter, split.reals))
    scoring = (split.labels, palette.num_classes, palette.ignore_id)
    return {"miou": miou(real_pred, *scoring), "pixel_acc": pixel_accuracy(real_pred, *scoring)}


def evaluate(cfg: EvaluateConfig, force: bool = False, log=None) -> Dict[str, Any]:
    """Score every generator of ``cfg``; returns the results dict (also written to ``cfg.output``).
    ``force`` overwrites an existing output / grid."""
    from tqdm import tqdm

    from compress.models.checkpoints import load_generator
    from compress.common.palettes import load_palette
    from compress.training.distributed import resolve_device
    log = log or tqdm.write
    names, paths = _check_inputs(cfg, force), cfg.generator_list
    device = resolve_device(cfg.device)
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    models = [load_generator(path) for path in paths]
    palette_name = cfg.palette or models[0][1].get("palette")
    palette = load_palette(palette_name) if palette_name else None
    segmenter = None
    if "miou" in cfg.metric_list:
        if palette is None:
            raise ValueError("miou needs a label palette: pass --palette=NAME (assets/palettes)")
        from compress.metrics.segmenter import load_segmenter
        segmenter, _ = load_segmenter(cfg.segmenter)
    reference_model = load_generator(cfg.reference)[0] if cfg.reference else None
    tools = (cfg.metric_list, palette, segmenter, reference_model)

    splits: Dict[Optional[int], _Split] = {}
    results: Dict[str, Any] = {"generators": {}, "real": {}}
    outputs: Dict[str, np.ndarray] = {}
    stats: Dict[str, Dict[str, Any]] = {}
    with tqdm(list(zip(names, paths, models)), desc="evaluate", unit="model") as bar:
        for name, path, (model, meta) in bar:
            size = cfg.size or (meta.get("resolution") or [None, None])[1]
            if size not in splits:
                splits[size] = _Split(cfg, palette_name, size)
            split = splits[size]
            if split.inputs.shape[1] != model.input_nc:
                raise ValueError(f"{path}: the generator takes {model.input_nc} input channels but the "
                                 f"{cfg.dataset_mode} data gives {split.inputs.shape[1]} (check "
                                 "input_encoding / palette)")
            bar.set_postfix_str(f"{name}: translating {len(split.inputs)} images")
            fakes = _translate(model.to(device), split.inputs, device, cfg.batch_size)
            model.to("cpu")
            outputs[name] = fakes
            stats[name] = {}
            row = _score(cfg, model, path, split, fakes, device, tools, stats[name], bar)
            key = f"{fakes.shape[1]}x{fakes.shape[2]}"
            if segmenter is not None and split.labels is not None and key not in results["real"]:
                results["real"][key] = _ceiling(segmenter, split, palette)
            results["generators"][name] = row
            log(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)))
    if cfg.bootstrap and any(stats.values()):
        _add_intervals(cfg, results, stats, names[0], len(next(iter(splits.values())).inputs))
    results["settings"] = asdict(cfg)
    results["items"] = next(iter(splits.values())).stems  # which inputs were scored
    if cfg.grid:
        first = splits[cfg.size or (models[0][1].get("resolution") or [None, None])[1]]
        write_grid(cfg.grid, first.inputs, outputs, first.reals, cfg.grid_rows, cfg.grid_scale,
                   overwrite=True)
        results["grid"] = cfg.grid
        log(f"wrote the picture grid to {cfg.grid}")
    if cfg.output:
        from compress.common.atomic import atomic_write_text
        atomic_write_text(cfg.output, json.dumps(results, indent=1, sort_keys=True) + "\n", overwrite=True)
    return results


def _add_intervals(cfg: EvaluateConfig, results: Dict[str, Any], stats: Dict[str, Dict[str, Any]],
                   baseline: str, count: int) -> None:
    """Paired bootstrap intervals into each generator's row (the baseline is the first one)."""
    from compress.metrics.bootstrap import paired_bootstrap
    intervals = paired_bootstrap(stats, count, baseline, resamples=cfg.bootstrap, seed=cfg.bootstrap_seed,
                                 confidence=cfg.confidence)
    for name, extra in intervals.items():
        results["generators"][name].update(extra)
    results["bootstrap"] = {"resamples": cfg.bootstrap, "seed": cfg.bootstrap_seed,
                            "confidence": cfg.confidence, "baseline": baseline, "items": count,
                            "method": "paired percentile bootstrap over items (compress.metrics.bootstrap)"}


def write_grid(path: str, inputs: torch.Tensor, outputs: Dict[str, np.ndarray], reals: np.ndarray,
               rows: int, scale: int, overwrite: bool = False) -> None:
    """PNG: one row per item, columns input | outputs (same size) | real; cells upscaled by ``scale``."""
    from PIL import Image

    from compress.common.atomic import atomic_write
    from compress.metrics import to_uint8_images
    shown = to_uint8_images(inputs[:rows]) if inputs.shape[1] == 3 else np.zeros_like(reals[:rows])
    height, width = reals.shape[1:3]
    same_size = [o[:rows] for o in outputs.values() if o.shape[1:3] == (height, width)]
    columns = [shown] + same_size + [reals[:rows]]
    gap = 4
    count = min(rows, len(reals))
    canvas = np.full((count * (height * scale + gap) - gap, len(columns) * (width * scale + gap) - gap, 3),
                     255, np.uint8)
    for r in range(count):
        for c, images in enumerate(columns):
            cell = images[r].repeat(scale, axis=0).repeat(scale, axis=1)
            y, x = r * (height * scale + gap), c * (width * scale + gap)
            canvas[y:y + height * scale, x:x + width * scale] = cell
    atomic_write(path, lambda temp: Image.fromarray(canvas).save(temp, format="PNG"), overwrite=overwrite)


def _cell(row: Dict[str, Any], key: str, fmt: str) -> str:
    """``value`` or ``value [lo, hi]`` when the row holds ``<key>_interval``."""
    from compress.models.profile import human
    value = row.get(key)
    if value is None:
        return ""
    if key in ("macs", "params"):
        return human(value)
    if value == float("inf"):  # PSNR of the reference against itself
        return "—"
    text = fmt.format(value)
    interval = row.get(f"{key}_interval")
    if interval and all(v == v for v in interval):  # skip NaN bounds
        text += " [" + ", ".join(fmt.format(v) for v in interval) + "]"
    return text


def markdown_table(results: Dict[str, Any]) -> str:
    """The results as a Markdown table (one row per generator, then the real-photo ceiling);
    bracketed ranges are the bootstrap intervals, when computed."""
    baseline = results.get("bootstrap", {}).get("baseline")
    columns = [("fid", "FID", "{:.1f}"), ("kid", "KID", "{:.4f}"),
               ("kid_ratio", f"KID / {baseline}", "{:.3f}"),
               ("miou", "mIoU (%)", "{:.2f}"), ("miou_diff", f"mIoU − {baseline}", "{:+.2f}"),
               ("pixel_acc", "pixel acc. (%)", "{:.1f}"), ("psnr_vs_real", "PSNR vs real (dB)", "{:.2f}"),
               ("psnr_vs_reference", "PSNR vs reference (dB)", "{:.2f}"), ("macs", "MACs", "{}"),
               ("params", "params", "{}")]
    rows = list(results["generators"].items())
    present = [c for c in columns if any(c[0] in row for _, row in rows)]
    lines = ["| model | " + " | ".join(title for _, title, _ in present) + " |",
             "|---|" + "---|" * len(present)]
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(_cell(row, key, fmt) for key, _, fmt in present) + " |")
    for key, row in results.get("real", {}).items():
        lines.append(f"| real photos ({key}, segmenter ceiling) | " + " | ".join(
            f"{row[k]:.2f}" if k == "miou" else (f"{row[k]:.1f}" if k == "pixel_acc" else "")
            for k, _, _ in present) + " |")
    if "bootstrap" in results:
        boot = results["bootstrap"]
        lines.append(f"\n[lo, hi]: {boot['confidence']:.0%} paired bootstrap intervals ({boot['resamples']} "
                     f"resamples of the {boot['items']} items, seed {boot['seed']}); differences and ratios "
                     f"against {baseline}.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python -m compress.evaluate runs/facades_pix2pix/G_best.safetensors \\
      runs/facades_compress/compressed.safetensors \\
      --names=teacher,student --dataroot=../shared/datasets/facades/256 \\
      --segmenter=runs/segmenter/facades/best.safetensors --output=runs/facades_eval.json
  python -m compress.evaluate G.safetensors --dataroot=DATA --metrics=fid,kid --grid=grid.png

"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = command_parser(
        "python -m compress.evaluate",
        "Score generators side by side on a validation split (FID, KID, mIoU, PSNR, MACs).",
        EXAMPLES + "settings (--key=value or a TOML file with --config):\n" + describe_config(EvaluateConfig))
    parser.add_argument("checkpoints", nargs="*", help="generator checkpoints (.safetensors)")
    parser.add_argument("--config", help="TOML file of settings")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output / grid")
    args, overrides = parse_command(parser, argv)

    def body() -> int:
        cfg = load_config(EvaluateConfig, args.config, overrides)
        if args.checkpoints:
            cfg.generators = ",".join(cfg.generator_list + args.checkpoints)
        print(markdown_table(evaluate(cfg, force=args.force)))
        if cfg.output:
            print(f"wrote {cfg.output}")
        return 0
    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
