"""Pre-distillation (the original GAN Compression flow): prune the mobile teacher to a fixed
narrower student, then distill it.

    python -m compress.distill configs/edges2shoes_distill.toml
    python -m compress.distill CONFIG --student_ngf=32 --output_dir=runs/distill32

The teacher is a ``mobile_resnet_9blocks`` checkpoint (upstream: ngf 64, 96 for cityscapes /
maps). The student is a ``mobile_resnet_9blocks`` of width ``student_ngf`` (upstream 48; 32 for
horse2zebra) holding the teacher's top-L1 channels (`compress.pruning.prune_resnet`), or a
fresh one with ``prune = false`` (always for SPADE teachers: ``mobile_spade`` students start
from scratch here). It is then trained with the supernet objective at its fixed width
(`compress.training.distill_recipe`). Its weights seed the supernet of the original flow:
``python -m compress.supernet ... --init_student=<output_dir>/student.safetensors``.

Outputs in ``output_dir``: ``student.safetensors`` (+ ``student_best``), ``discriminator`` and
``adaptors`` ``.safetensors``, ``train_state.pt`` (resume), ``metrics.json``, ``tensorboard/``.
"""
import sys
from dataclasses import dataclass

from torch import nn

from compress.config import option
from compress.training.distill_recipe import fixed_sampler
from compress.training.stage import Stage, StudentPlan, run_stage, stage_main, student_kwargs
from compress.training.stage_config import StageConfig

STUDENT_ARCH = {"resnet": "mobile_resnet_9blocks", "spade": "mobile_spade"}


@dataclass
class DistillConfig(StageConfig):
    student_ngf: int = option(48, "student width (upstream 48; 32 for horse2zebra)")
    prune: bool = option(True, "start from the teacher's top-L1 channels (ResNet teachers only); false: "
                               "a freshly initialised student")
    output_dir: str = option("runs/distill", "run folder: checkpoints, logs, student.safetensors")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.student_ngf < 1:
            raise ValueError(f"student_ngf must be >= 1, got {self.student_ngf}")


def plan_distill(cfg: DistillConfig, teacher: nn.Module, input_nc: int, size_hw, note) -> StudentPlan:
    from compress.models import arch_name, build_generator
    from compress.training.recipe import init_weights
    if cfg.prune:
        from compress.pruning import prune_resnet
        if arch_name(teacher) != "mobile_resnet_9blocks":
            raise ValueError(f"pruning copies channels of a mobile_resnet_9blocks teacher into a "
                             f"mobile_resnet_9blocks student; {cfg.teacher} is a {arch_name(teacher)}: "
                             "set prune = false to distill a freshly initialised student")
        if cfg.student_ngf > teacher.ngf:
            raise ValueError(f"student_ngf = {cfg.student_ngf} is wider than the teacher (ngf {teacher.ngf})")
        student = prune_resnet(teacher, cfg.student_ngf)
        note(f"student: the teacher's top-L1 channels, ngf {teacher.ngf} -> {cfg.student_ngf}")
    else:
        student = build_generator(STUDENT_ARCH[teacher.family],
                                  **student_kwargs(teacher, cfg.student_ngf, size_hw))
        init_weights(student, cfg.init_type, cfg.init_gain)
    return StudentPlan(student, fixed_sampler(None), meta={"pruned": bool(cfg.prune)})


STAGE = Stage("distill", "student", plan_distill)


def distill(cfg: DistillConfig, force: bool = False, step_callback=None) -> int:
    return run_stage(cfg, STAGE, force, step_callback)


EXAMPLES = """examples:
  python -m compress.distill configs/edges2shoes_distill.toml
  python -m compress.distill configs/edges2shoes_distill.toml --student_ngf=32 --output_dir=runs/d32

Rerunning the same command resumes from <output_dir>/train_state.pt; Ctrl-C saves and stops.
"""


def main(argv=None) -> int:
    return stage_main(argv, DistillConfig, distill, "python -m compress.distill",
                      "Prune a mobile teacher to a narrower student by L1 channel selection and distill it; "
                      "writes <output_dir>/student.safetensors.", EXAMPLES)


if __name__ == "__main__":
    sys.exit(main())
