"""Pre-distillation (the original GAN Compression flow): prune the mobile teacher to a fixed
narrower student, then distill it. Also: distill one fixed compact sub-network directly.

    python -m compress.distill CONFIG --student_ngf=32 --output_dir=runs/distill32
    python -m compress.distill configs/facades_distill_subnet.toml   (a fixed sub-network)

The teacher is a ``mobile_resnet_9blocks`` checkpoint (upstream: ngf 64, 96 for cityscapes /
maps). The student is a ``mobile_resnet_9blocks`` of width ``student_ngf`` (upstream 48; 32 for
horse2zebra) holding the teacher's top-L1 channels (`compress.models.pruning.prune_resnet`), or a
fresh one with ``prune = false`` (always for SPADE teachers: ``mobile_spade`` students start
from scratch here). It is then trained with the supernet objective at its fixed width
(`compress.distillation.objective`). Its weights seed the supernet of the original flow:
``python -m compress.supernet ... --init_student=<output_dir>/student.safetensors``.

With ``student_config`` the student is instead the standalone ``sub_mobile_*`` generator of that
config (e.g. one a search chose), trained at its fixed widths. ``init_student`` warm-starts it
from an existing generator whose tensors fit inside the new ones (e.g. a smaller sub-network of
the same supernet, or the same config): they are copied into the leading channel slices, as
`compress.models.extract_subnet` slices a supernet, and the remaining channels keep their fresh
initialisation (`grow_into`).

Outputs in ``output_dir``: ``student.safetensors`` (+ ``student_best``), ``discriminator`` and
``adaptors`` ``.safetensors``, ``train_state.pt`` (resume), ``metrics.json``, ``tensorboard/``.
"""
import sys
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from compress.common.config import option
from compress.distillation.objective import fixed_sampler
from compress.distillation.stages import Stage, StudentPlan, run_stage, stage_main, student_kwargs
from compress.distillation.stage_config import StageConfig

STUDENT_ARCH = {"resnet": "mobile_resnet_9blocks", "spade": "mobile_spade"}
SUBNET_ARCH = {"resnet": "sub_mobile_resnet_9blocks", "spade": "sub_mobile_spade"}


@dataclass
class DistillConfig(StageConfig):
    student_ngf: int = option(48, "student width (upstream 48; 32 for horse2zebra)")
    prune: bool = option(True, "start from the teacher's top-L1 channels (ResNet teachers only); false: "
                               "a freshly initialised student")
    student_config: str = option("", "train this fixed sub-network (e.g. 24_24_16_32_16_16_16_16) instead "
                                     "of a mobile student of student_ngf; needs prune = false")
    init_student: Optional[str] = option(None, "warm-start the student from this generator checkpoint: its "
                                               "tensors go into the leading channel slices (same keys, each "
                                               "dimension no larger)")
    output_dir: str = option("runs/distill", "run folder: checkpoints, logs, student.safetensors")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.student_config and self.prune:
            raise ValueError("student_config trains a fresh (or init_student) sub-network; pruning makes a "
                             "mobile student of student_ngf instead: set prune = false")


def grow_into(model: nn.Module, path: str) -> int:
    """Copy the tensors of the generator checkpoint ``path`` into the leading slices of ``model``'s
    tensors (same keys; every dimension of the source no larger). Returns how many of ``model``'s
    values came from the checkpoint; ValueError naming the file and the first misfit."""
    from compress.models.checkpoints import read_state_dict
    source, _ = read_state_dict(path)
    target = model.state_dict()
    keys = set(target) ^ set(source)
    if keys:
        raise ValueError(f"{path} does not fit the student: {len(keys)} key(s) differ, e.g. "
                         f"{sorted(keys)[0]}; init_student needs a generator of the same family and depth")
    copied = 0
    with torch.no_grad():
        for key, tensor in target.items():
            small = source[key]
            if small.dim() != tensor.dim() or any(a > b for a, b in zip(small.shape, tensor.shape)):
                raise ValueError(f"{path}: {key} is {tuple(small.shape)}, which does not fit inside the "
                                 f"student's {tuple(tensor.shape)}; init_student must be no wider anywhere")
            tensor[tuple(slice(0, n) for n in small.shape)] = small.to(tensor.dtype)
            copied += small.numel()
    model.load_state_dict(target)
    return copied


def plan_distill(cfg: DistillConfig, teacher: nn.Module, input_nc: int, size_hw, note) -> StudentPlan:
    from compress.models import arch_name, build_generator
    from compress.training.recipe import init_weights
    if cfg.student_config:
        kwargs = student_kwargs(teacher, cfg.student_ngf, size_hw)
        if teacher.family == "resnet":
            kwargs.pop("ngf")  # a ResNet sub-network's widths come from its config alone
        student = build_generator(SUBNET_ARCH[teacher.family], config=cfg.student_config, **kwargs)
        init_weights(student, cfg.init_type, cfg.init_gain)
        meta = {"pruned": False, "config": student.config}
        if cfg.init_student:
            copied = grow_into(student, cfg.init_student)
            total = sum(t.numel() for t in student.state_dict().values())
            note(f"student {student.config}: {copied / total:.0%} of its values from {cfg.init_student}")
            meta["init_student"] = cfg.init_student
        return StudentPlan(student, fixed_sampler(None), meta=meta)
    if cfg.init_student:
        raise ValueError("init_student warm-starts a student_config sub-network; set student_config too")
    if cfg.prune:
        from compress.models.pruning import prune_resnet
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
  python -m compress.distill CONFIG --student_ngf=32 --output_dir=runs/d32
  python -m compress.distill configs/facades_distill_subnet.toml
  python -m compress.distill CONFIG --prune=false --student_config=24_24_16_32_16_16_16_16 \\
      --init_student=assets/models/facades/compressed.safetensors --lambda_teacher_l1=100

Rerunning the same command resumes from <output_dir>/train_state.pt; Ctrl-C saves and stops.
"""


def main(argv=None) -> int:
    return stage_main(argv, DistillConfig, distill, "python -m compress.distill",
                      "Prune a mobile teacher to a narrower student by L1 channel selection and distill it; "
                      "writes <output_dir>/student.safetensors.", EXAMPLES)


if __name__ == "__main__":
    sys.exit(main())
