"""Train the once-for-all student ("supernet") of GAN Compression.

    python -m compress.supernet configs/facades_supernet.toml
    python -m compress.supernet configs/facades_supernet.toml --sampling=sandwich --output_dir=runs/s2
    torchrun --nproc_per_node=4 -m compress.supernet configs/facades_supernet.toml

A `super_mobile_resnet_9blocks` / `super_mobile_spade` student of width ``student_ngf`` learns
from a frozen teacher (Fast GAN Compression: the full ``resnet_9blocks`` / ``spade`` teacher and
a fresh supernet; original flow: the mobile teacher, starting from the distilled student,
``init_student``). Every step trains a sub-network drawn uniformly from the search space
(``sampling = "uniform"``, upstream), or the largest, the smallest and a random one with
accumulated gradients (``"sandwich"``). Losses: `compress.distillation.objective`.
Validation scores the largest and smallest sub-networks (SPADE: after batch-norm
re-calibration); the primary metric is their mean.

Outputs in ``output_dir``: ``supernet.safetensors`` (metadata: search space and its choices,
teacher, held-out split), ``supernet_best.safetensors``, ``discriminator.safetensors`` and
``adaptors.safetensors`` (for `compress.finetune`), ``train_state.pt`` (resume: run the same
command again), ``metrics.json``, ``tensorboard/``.

Library: `load_supernet`, `search_space_of`, `calibrate_batchnorm`, `calibration_batches`.
"""
import sys
from dataclasses import dataclass
from typing import List, Optional

from torch import nn

from compress.common.config import option
from compress.models.search_space import (encode_config, load_supernet,
                                          resolve_search_space, search_space_of)
from compress.distillation.calibration import calibrate_batchnorm, calibration_batches
from compress.distillation.objective import sandwich_sampler, uniform_sampler
from compress.distillation.stages import (Stage, StudentPlan, load_weights, run_stage, stage_main,
                                          student_kwargs)
from compress.common.settings import check_choices
from compress.distillation.stage_config import StageConfig

SUPERNET_ARCH = {"resnet": "super_mobile_resnet_9blocks", "spade": "super_mobile_spade"}


@dataclass
class SupernetConfig(StageConfig):
    student_ngf: int = option(64, "supernet width (Fast flow: 64; original flow: the distilled student's 48)")
    search_space: str = option("channels-64-pix2pix", "official search space name (compress.models."
                                                      "SEARCH_SPACES), or \"custom\" with channel_choices")
    channel_choices: List[int] = option([], "search_space = \"custom\": the channel choices of every one "
                                            "of the 8 config positions, e.g. [32, 24, 16]")
    sampling: str = option("uniform", "sub-networks per step: uniform (one random, upstream) | sandwich "
                                      "(largest + smallest + random, gradients accumulated)")
    init_student: Optional[str] = option(None, "start from these weights (original flow: the distilled "
                                               "student of compress.distill, same ngf) instead of a "
                                               "fresh init")
    output_dir: str = option("runs/supernet", "run folder: checkpoints, logs, supernet.safetensors")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"sampling": ("uniform", "sandwich")})
        if self.search_space == "custom" and not self.channel_choices:
            raise ValueError("search_space = \"custom\" needs channel_choices = [...], e.g. [32, 24, 16]")
        if self.channel_choices and self.search_space != "custom":
            raise ValueError("channel_choices is only used with search_space = \"custom\"")
        if any(c < 1 for c in self.channel_choices):
            raise ValueError(f"channel_choices must be positive, got {self.channel_choices}")


def plan_supernet(cfg: SupernetConfig, teacher: nn.Module, input_nc: int, size_hw, note) -> StudentPlan:
    from compress.models import build_generator
    from compress.training.recipe import init_weights
    family = teacher.family
    space = resolve_search_space(family, cfg.search_space, cfg.channel_choices)
    student = build_generator(SUPERNET_ARCH[family], **student_kwargs(teacher, cfg.student_ngf, size_hw))
    try:
        student.widths_for(space.largest())
    except ValueError:
        raise ValueError(f"search space {space.name} reaches {encode_config(space.largest())}, wider "
                         f"than student_ngf = {cfg.student_ngf}; raise student_ngf or pick a narrower "
                         "space") from None
    if cfg.init_student:
        load_weights(student, cfg.init_student, "supernet")
        note(f"supernet initialised from {cfg.init_student}")
    else:
        init_weights(student, cfg.init_type, cfg.init_gain)
    sampler = sandwich_sampler(space) if cfg.sampling == "sandwich" else uniform_sampler(space)
    meta = {"search_space": space.name, "search_choices": [list(c) for c in space.choices],
            "sampling": cfg.sampling, "init_student": cfg.init_student}
    return StudentPlan(student, sampler, [("largest", space.largest()), ("smallest", space.smallest())],
                       meta, calibrate=family == "spade")


STAGE = Stage("supernet", "supernet", plan_supernet)


def train_supernet(cfg: SupernetConfig, force: bool = False, step_callback=None) -> int:
    return run_stage(cfg, STAGE, force, step_callback)


EXAMPLES = """examples:
  python -m compress.supernet configs/facades_supernet.toml
  python -m compress.supernet configs/smoke_supernet.toml --teacher=runs/smoke_pix2pix/G_final.safetensors
  torchrun --nproc_per_node=4 -m compress.supernet configs/facades_supernet.toml

Rerunning the same command resumes from <output_dir>/train_state.pt; Ctrl-C saves and stops.
"""


def main(argv=None) -> int:
    return stage_main(argv, SupernetConfig, train_supernet, "python -m compress.supernet",
                      "Train a once-for-all GAN Compression supernet by distillation from a teacher; "
                      "writes <output_dir>/supernet.safetensors.", EXAMPLES)


__all__ = ["SupernetConfig", "load_supernet", "search_space_of", "calibrate_batchnorm", "calibration_batches",
           "resolve_search_space", "train_supernet", "main"]

if __name__ == "__main__":
    sys.exit(main())
