"""Fine-tune the chosen sub-network of a trained supernet (after the search).

    python -m compress.finetune configs/facades_finetune.toml
    python -m compress.finetune configs/facades_finetune.toml --mode=standalone \
        --config=16_16_32_16_32_32_16_16

``mode = "in_supernet"`` (upstream: ``train_supernet.py --config_str``) keeps training the
supernet, but with the chosen ``config`` at every step: only the leading weight slices of that
sub-network receive gradients, so with Adam every other weight stays exactly as it was. The
export is the supernet with that config active (``finetuned.safetensors``; its metadata names
the config); `compress.extract` turns it into the standalone generator. ``mode = "standalone"``
extracts the sub-network first (`compress.models.extract_subnet`) and trains that plain
generator; the export is already the standalone ``sub_mobile_*`` generator.

Same losses and teacher as the supernet stage. ``restore_D`` / ``restore_A`` continue the
supernet run's discriminator and adaptors (its ``discriminator.safetensors`` /
``adaptors.safetensors``), as upstream's fine-tuning does.
"""
import sys
from dataclasses import dataclass

from torch import nn

from compress.common.config import option
from compress.distillation.objective import fixed_sampler
from compress.distillation.stages import Stage, StudentPlan, run_stage, stage_main
from compress.common.settings import check_choices
from compress.distillation.stage_config import StageConfig

MODES = ("in_supernet", "standalone")


@dataclass
class FinetuneConfig(StageConfig):
    supernet: str = option("", "supernet checkpoint to start from (supernet.safetensors of "
                               "compress.supernet)")
    config: str = option("", "the chosen sub-network, e.g. 16_16_32_16_32_32_16_16 (from compress.search)")
    mode: str = option("in_supernet", "in_supernet (train that config inside the supernet) | standalone "
                                      "(extract it, then train the sub-network alone)")
    output_dir: str = option("runs/finetune", "run folder: checkpoints, logs, finetuned.safetensors")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"mode": MODES})
        if not self.supernet:
            raise ValueError("supernet is not set: give the supernet checkpoint (supernet = \"runs/.../"
                             "supernet.safetensors\" or --supernet=...)")
        if not self.config:
            raise ValueError("config is not set: give the sub-network to fine-tune, e.g. "
                             "config = \"16_16_32_16_32_32_16_16\" (the search result)")


def plan_finetune(cfg: FinetuneConfig, teacher: nn.Module, input_nc: int, size_hw, note) -> StudentPlan:
    from compress.distillation.features import feature_widths
    from compress.models import extract_subnet
    from compress.models.search_space import encode_config, parse_config
    from compress.models.search_space import load_supernet, search_space_of
    supernet, meta = load_supernet(cfg.supernet)
    if supernet.family != teacher.family or supernet.input_nc != input_nc:
        raise ValueError(f"{cfg.supernet} ({meta.get('arch')}, {supernet.input_nc} input channels) does not "
                         f"match the teacher {cfg.teacher} / dataset ({input_nc} input channels)")
    channels = parse_config(cfg.config, (8,))
    supernet.widths_for(channels)  # ValueError when it does not fit
    config = encode_config(channels)
    if "search_choices" in meta and channels not in search_space_of(meta):
        note(f"note: {config} lies outside the supernet's search space {meta.get('search_space')}; "
             "its weights were never trained as one sub-network")
    adaptor_widths = feature_widths(supernet)  # the supernet's adaptors fit any of its sub-networks
    if cfg.mode == "in_supernet":
        supernet.set_config(channels)
        student = supernet
    else:
        student = extract_subnet(supernet, channels)
    note(f"fine-tuning {config} {cfg.mode.replace('_', ' ')} from {cfg.supernet}")
    extra = {"config": config, "finetune_mode": cfg.mode, "supernet": cfg.supernet,
             "search_space": meta.get("search_space"), "search_choices": meta.get("search_choices")}
    return StudentPlan(student.train(), fixed_sampler(None), meta=extra, adaptor_widths=adaptor_widths,
                       calibrate=student.family == "spade")


STAGE = Stage("finetune", "finetuned", plan_finetune)


def finetune(cfg: FinetuneConfig, force: bool = False, step_callback=None) -> int:
    return run_stage(cfg, STAGE, force, step_callback)


EXAMPLES = """examples:
  python -m compress.finetune configs/facades_finetune.toml
  python -m compress.finetune configs/facades_finetune.toml --mode=standalone --output_dir=runs/ft_alone
  python -m compress.extract --supernet=runs/facades_finetune/finetuned.safetensors \
      --output=runs/facades_compressed.safetensors

Rerunning the same command resumes from <output_dir>/train_state.pt; Ctrl-C saves and stops.
"""


def main(argv=None) -> int:
    return stage_main(argv, FinetuneConfig, finetune, "python -m compress.finetune",
                      "Fine-tune one sub-network of a GAN Compression supernet (inside the supernet or "
                      "extracted); writes <output_dir>/finetuned.safetensors.", EXAMPLES)


if __name__ == "__main__":
    sys.exit(main())
