"""Extract the standalone compressed generator from a (fine-tuned) supernet.

    python -m compress.extract --supernet=runs/facades_supernet/supernet.safetensors \\
        --config=16_16_32_16_32_32_16_16 --output=runs/facades_compressed.safetensors

The sub-network's weights are the leading slices of the supernet's
(`compress.models.extract_subnet`, upstream ``export.py``). A ``finetuned.safetensors`` of
`compress.finetune` names its config in the metadata (``config`` may be left out); a
standalone one is re-written as it is. SPADE sub-networks get their batch-norm statistics
re-calibrated on ``calibration_images`` training images first (their supernet statistics fit
no sub-network), so SPADE needs the dataset. With ``eval_metric`` the result is scored on the
validation split and the score stored in the metadata.

The output is the project's generator format (`compress.models.checkpoints.save_generator`) with
metadata: arch, build, config, teacher, supernet, MACs (paper convention and true), params,
palette, input_kind, resolution, validation scores. An existing output needs ``--force``.
"""
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from tqdm import tqdm

from compress.common.config import option, save_config
from compress.distillation.stage_config import DataConfig

SUBNET_ARCHS = ("sub_mobile_resnet_9blocks", "sub_mobile_spade", "legacy_sub_mobile_resnet_9blocks")


@dataclass
class ExtractConfig(DataConfig):
    supernet: str = option("", "supernet.safetensors (compress.supernet) or finetuned.safetensors "
                               "(compress.finetune)")
    config: Optional[str] = option(None, "sub-network to extract, e.g. 16_16_32_16_32_32_16_16 (default: the "
                                         "config a fine-tuned checkpoint names)")
    output: str = option("", "output .safetensors of the compressed generator")
    teacher: Optional[str] = option(None, "teacher checkpoint, for eval_metric = fidelity (default: the "
                                          "supernet's teacher)")
    resolution: Optional[str] = option(None, "HxW stored in the metadata and used for MACs (default: the "
                                             "supernet's)")
    eval_metric: str = option("none", "score the result on the validation split: fid | miou | psnr | "
                                      "fidelity | none")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.supernet:
            raise ValueError("supernet is not set: give the supernet or fine-tuned checkpoint "
                             "(--supernet=...)")
        if not self.output or not self.output.endswith(".safetensors"):
            raise ValueError(f"output must be a .safetensors path, got {self.output!r}")


def subnet_of(path: str, config: Optional[str]):
    """(standalone sub-generator, its config string, the checkpoint's metadata)."""
    from compress.models.checkpoints import load_generator
    from compress.models import extract_subnet
    from compress.models.search_space import encode_config, parse_config
    model, meta = load_generator(path)
    if hasattr(model, "make_subnet"):
        config = config or meta.get("config")
        if not config:
            raise ValueError(f"{path} is a supernet: give config = \"...\" (the sub-network to extract, "
                             "e.g. the result of compress.search)")
        subnet = extract_subnet(model, config)
    elif meta["arch"] in SUBNET_ARCHS:
        subnet = model
        if config and parse_config(config, (8, 6)) != parse_config(model.config, (8, 6)):
            raise ValueError(f"{path} is the standalone sub-network {model.config}, not {config}")
    else:
        raise ValueError(f"{path} holds a {meta['arch']}: give a supernet or a sub-network checkpoint")
    return subnet.eval(), encode_config(parse_config(subnet.config, (8, 6))), meta


def extract(cfg: ExtractConfig, force: bool = False) -> int:
    from compress.models.checkpoints import generator_metadata, save_generator
    from compress.models.profile import parse_size
    from compress.distillation.calibration import calibrate_batchnorm, calibration_batches
    from compress.training.distributed import resolve_device
    from compress.distillation.stages import base_evaluator, build_datasets, load_teacher

    if os.path.exists(cfg.output) and not force:
        raise FileExistsError(f"{cfg.output} exists; pass --force to replace it")
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    device = resolve_device(cfg.device)
    subnet, config, meta = subnet_of(cfg.supernet, cfg.config)
    cfg.palette = cfg.palette or meta.get("palette")
    needs_data = subnet.family == "spade" or cfg.eval_metric != "none"
    if needs_data and not cfg.dataroot:
        raise ValueError("SPADE sub-networks need batch-norm re-calibration on training images, and "
                         "evaluation needs the validation split: set dataroot (and the supernet's data "
                         "settings)")
    subnet = subnet.to(device)
    calibrated, scores = 0, {}
    if needs_data:
        train_set, val_set, _ = build_datasets(cfg)
        if subnet.family == "spade":
            batches = calibration_batches(train_set, cfg.calibration_images, cfg.batch_size)
            total = -(-min(cfg.calibration_images, len(train_set)) // cfg.batch_size)
            calibrate_batchnorm(subnet, tqdm(batches, total=total, desc="calibrating batch norm",
                                             unit="batch"))
            calibrated = min(cfg.calibration_images, len(train_set))
        teacher_path = cfg.teacher or meta.get("teacher")
        teacher = None
        if cfg.eval_metric == "fidelity":
            teacher, _ = load_teacher(teacher_path, None, device)
        evaluator = base_evaluator(cfg, device, val_set, teacher,
                                   os.path.join(os.path.dirname(os.path.abspath(cfg.output)), "real_stats"))
        if evaluator is not None:
            with torch.no_grad():
                scores, _ = evaluator(subnet)
    subnet = subnet.cpu().eval()
    resolution = parse_size(cfg.resolution) if cfg.resolution else tuple(meta.get("resolution") or (256, 256))
    extra: Dict[str, Any] = {
        "config": config, "stage": "extract", "supernet": cfg.supernet,
        "teacher": cfg.teacher or meta.get("teacher"),
        "search_space": meta.get("search_space"), "dataset": meta.get("dataset"),
        "finetune_mode": meta.get("finetune_mode"), "bn_calibration_images": calibrated,
        "validation": {k: float(v) for k, v in scores.items()}}
    out_meta = generator_metadata(subnet, resolution=resolution, palette=cfg.palette,
                                  input_kind=cfg.input_kind or meta.get("input_kind"), **extra)
    save_generator(subnet, cfg.output, meta=out_meta, overwrite=force)
    save_config(cfg, os.path.splitext(cfg.output)[0] + ".config.toml",
                header=f"resolved configuration of python -m compress.extract for {cfg.output}")
    summary = ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
    print(f"wrote {cfg.output}: {out_meta['arch']} {config}, {out_meta['macs'] / 1e9:.3f}G MACs, "
          f"{out_meta['params']:,} params" + (f"; validation: {summary}" if summary else ""))
    return 0


EXAMPLES = """examples:
  python -m compress.extract my_extract.toml        # a flat TOML of the settings below
  python -m compress.extract --supernet=runs/facades_supernet/supernet.safetensors \\
      --config=16_16_32_16_32_32_16_16 --output=runs/facades_compressed.safetensors
  python -m compress.extract --supernet=runs/facades_finetune/finetuned.safetensors \\
      --output=runs/facades_compressed.safetensors --dataroot=../shared/datasets/facades/256 \\
      --dataset_mode=labelmap --palette=facades --crop_size=128 --eval_metric=psnr
"""


def main(argv=None) -> int:
    from compress.distillation.stages import stage_main
    return stage_main(argv, ExtractConfig, extract, "python -m compress.extract",
                      "Write the standalone compressed generator (sub-network of a supernet) with full "
                      "metadata; SPADE batch norms are re-calibrated on training images first.", EXAMPLES)


if __name__ == "__main__":
    sys.exit(main())
