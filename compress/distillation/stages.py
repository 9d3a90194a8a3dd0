"""Building and running a student-training stage of GAN Compression (distill, supernet,
finetune): data, frozen teacher, discriminator, adaptors, `DistillRecipe`, evaluation, export,
and the command line they share. Each stage module only says how its student is made
(a `StudentPlan`); everything else, including resume, signals, torchrun and TensorBoard, is the
common `compress.training.engine.Trainer`.

Run folder of a stage (``output_dir``):
  config.toml                 resolved settings (rerunning the same command resumes)
  train_state.pt              resume checkpoint: student, discriminator, adaptors, optimisers, RNG
  <name>.safetensors          the trained student (supernet.safetensors, student.safetensors, ...)
  <name>_best.safetensors     best one by the validation metric
  discriminator.safetensors   D and adaptors at the end, to continue from (``restore_D`` /
  adaptors.safetensors        ``restore_A`` of the next stage)
  metrics.json, tensorboard/, real_stats/
"""
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from tqdm import tqdm

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import check_multiple, describe_config, load_config
from compress.distillation.features import Adaptors, feature_widths, mapped_layers
from compress.distillation.calibration import calibrate_batchnorm, calibration_batches, preserved_buffers
from compress.distillation.objective import DistillRecipe, Sampler
from compress.training import run_dir as run_folder
from compress.training.engine import STATE_FILE, Trainer
from compress.distillation.stage_config import DataConfig, StageConfig

CONFIG_FILE = run_folder.CONFIG_FILE
AUX_FORMAT = "gan-compression-aux/1"
RESUMABLE_CHANGES = run_folder.RESUMABLE_CHANGES + ("calibration_images",)
Note = Callable[[str], None]


@dataclass
class StudentPlan:
    """What a stage trains: the student, the configs of each step, what to evaluate."""

    student: nn.Module
    sampler: Sampler
    eval_configs: List[Tuple[str, Any]] = field(default_factory=lambda: [("", None)])
    meta: Dict[str, Any] = field(default_factory=dict)  # extra metadata of the exported student
    adaptor_widths: Optional[List[int]] = None  # adaptor input widths (default: the student's)
    calibrate: bool = False  # SPADE supernet: re-calibrate batch norms before each evaluation


@dataclass
class Stage:
    name: str        # "supernet": progress bar and metadata
    export_name: str  # "supernet" -> supernet.safetensors
    plan: Callable[[Any, nn.Module, int, Tuple[int, int], Note], StudentPlan]


# ----------------------------------------------------------------------------- building blocks

def build_datasets(cfg: DataConfig, need_val: bool = True):
    """(train set without the held-out items, validation set or None, held-out stems)."""
    from compress.data import build_dataset, holdout_split
    common = dict(direction=cfg.direction, palette=cfg.palette, input_encoding=cfg.input_encoding,
                  instance_edges=cfg.instance_edges, seed=cfg.seed)
    train_args = dict(load_size=cfg.size_hw(cfg.load_size), crop_size=cfg.size_hw(cfg.crop_size),
                      flip=cfg.flip, **common)
    train = build_dataset(cfg.dataset_mode, cfg.dataroot, "train", max_items=cfg.max_items, **train_args)
    held: List[str] = []
    if cfg.holdout_items:
        kept, held = holdout_split(train.stems, cfg.holdout_items, cfg.holdout_seed)
        train = build_dataset(cfg.dataset_mode, cfg.dataroot, "train", stems=kept, **train_args)
    if cfg.eval_metric == "none" or not need_val:
        return train, None, held
    val = build_dataset(cfg.dataset_mode, cfg.dataroot, cfg.val_split, flip=False, random_crop=False,
                        load_size=cfg.size_hw(cfg.crop_size or cfg.load_size), **common)
    return train, val, held


def load_teacher(path: str, arch: Optional[str], device: torch.device):
    """The frozen teacher (eval mode, no gradients, spectral norm removed) and its metadata."""
    from compress.models.checkpoints import load_generator
    if not os.path.isfile(path):
        shipped = _shipped_teachers()
        hint = (f"; or start from a shipped teacher: {' or '.join(f'--teacher={t}' for t in shipped)}"
                if shipped else "")
        raise ValueError(f"{path}: teacher checkpoint not found; train one first (python -m compress.train "
                         f"CONFIG, see configs/*_pix2pix.toml) or pass --teacher=PATH{hint}")
    teacher, meta = load_generator(path, **({"arch": arch} if arch else {}))
    if hasattr(teacher, "remove_spectral_norm"):
        teacher.remove_spectral_norm()  # Fast GAN Compression distills from the SN-free teacher
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.to(device).eval(), meta


def _shipped_teachers() -> List[str]:
    """assets/models/<pair>/original.safetensors files (relative paths, as the configs use)."""
    root = os.path.join("assets", "models")
    if not os.path.isdir(root):
        return []
    return [os.path.join(root, name, "original.safetensors") for name in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, name, "original.safetensors"))]


def student_kwargs(teacher: nn.Module, ngf: int, size_hw: Tuple[int, int]) -> Dict[str, Any]:
    """`build_generator` arguments of a student of the teacher's family and input/output."""
    if teacher.family == "spade":
        height, width = size_hw
        return dict(semantic_nc=teacher.semantic_nc, output_nc=teacher.output_nc, ngf=ngf, crop_size=width,
                    aspect_ratio=width / height, num_upsampling_layers=teacher.num_upsampling_layers)
    return dict(input_nc=teacher.input_nc, output_nc=teacher.output_nc, ngf=ngf,
                n_blocks=len(teacher.widths.inner))


def load_weights(model: nn.Module, path: str, what: str) -> Dict[str, Any]:
    """Load a generator checkpoint's tensors into ``model`` strictly (same keys and shapes)."""
    from compress.models.checkpoints import read_state_dict
    state, meta = read_state_dict(path)
    expected = model.state_dict()
    bad = sorted(set(expected) ^ set(state)) + [k for k in expected if k in state
                                                 and state[k].shape != expected[k].shape]
    if bad:
        raise ValueError(f"{path} does not fit the {what} ({type(model).__name__}, ngf "
                         f"{getattr(model, 'ngf', '?')}): {len(bad)} key(s) differ, e.g. {bad[0]}; use a "
                         f"checkpoint of the same architecture and width")
    model.load_state_dict(state)
    return meta


def save_aux(module: nn.Module, path: str, meta: Dict[str, Any]) -> None:
    """A discriminator / adaptors state as safetensors (atomic), for the next stage to start from."""
    from safetensors.torch import save_file

    from compress.common.atomic import atomic_write
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    header = {"format": AUX_FORMAT, "meta": json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header), overwrite=True)


def load_aux(module: nn.Module, path: str, what: str) -> None:
    from safetensors.torch import load_file
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such {what} file (written at the end of a supernet/distill run)")
    state = load_file(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = str(error).splitlines()[-1].strip()
        raise ValueError(f"{path} does not fit this run's {what} ({reason}); check ndf / n_layers_D / "
                         "student and teacher widths") from None


def feature_terms(cfg: StageConfig) -> Optional[nn.Module]:
    """The frozen segmenter of the perceptual / style terms, when either is switched on."""
    if not (cfg.lambda_perceptual > 0 or cfg.lambda_style > 0):
        return None
    from compress.distillation.style import FeatureTerms
    from compress.metrics.segmenter import load_segmenter
    return FeatureTerms(load_segmenter(str(cfg.style_network))[0])


def build_discriminator(cfg: StageConfig, family: str, input_nc: int, output_nc: int) -> nn.Module:
    from compress.models.discriminators import MultiscaleDiscriminator, NLayerDiscriminator
    if family == "spade":
        return MultiscaleDiscriminator(input_nc + output_nc, cfg.ndf, cfg.n_layers_D, cfg.num_D, cfg.norm_D)
    channels = input_nc + output_nc if cfg.paired else output_nc  # unpaired: judges B images alone
    return NLayerDiscriminator(channels, cfg.ndf, cfg.n_layers_D, cfg.norm_D)


# ----------------------------------------------------------------------------- evaluation

class FidelityEvaluator:
    """PSNR (dB) of the student's outputs against the teacher's on validation inputs."""

    primary, higher_is_better = "fidelity", True

    def __init__(self, dataset, teacher: nn.Module, device: torch.device, max_images: int, batch_size: int):
        self.dataset, self.teacher, self.device = dataset, teacher, device
        self.count, self.batch_size = min(max_images, len(dataset)), batch_size

    def __call__(self, translate):
        from compress.metrics import psnr
        values, grid = [], None
        for start in range(0, self.count, self.batch_size):
            stop = min(start + self.batch_size, self.count)
            x = torch.stack([self.dataset[i]["A"] for i in range(start, stop)]).to(self.device)
            fake, target = translate(x).float().cpu(), self.teacher(x).float().cpu()
            values += [psnr(f[None], t[None]) for f, t in zip(fake, target)]
            if grid is None:
                shown = x.cpu()[:4] if x.size(1) == 3 else torch.zeros_like(fake[:4])
                grid = torch.stack([shown, fake[:4], target[:4]], 1).flatten(0, 1)
        return {"fidelity": float(sum(values) / len(values))}, grid


class ConfigEvaluator:
    """Evaluates several sub-networks (e.g. largest and smallest) with one base evaluator:
    metrics ``<label>_<name>``, and the primary metric as their mean. SPADE sub-networks are
    re-calibrated first, and the batch-norm buffers restored afterwards."""

    def __init__(self, base, configs: Sequence[Tuple[str, Any]], model: nn.Module,
                 calibrate: Optional[Callable[[Any], None]] = None):
        self.base, self.configs, self.model, self.calibrate = base, list(configs), model, calibrate
        self.primary, self.higher_is_better = base.primary, base.higher_is_better

    def __call__(self, translate):
        merged: Dict[str, float] = {}
        primaries, grid = [], None
        for label, config in self.configs:
            with preserved_buffers(self.model, enabled=self.calibrate is not None):
                if self.calibrate is not None:
                    self.calibrate(config)
                metrics, images = self.base(lambda x, c=config: translate(x, c))
            prefix = f"{label}_" if label else ""
            merged.update({prefix + k: v for k, v in metrics.items()})
            primaries.append(float(metrics[self.primary]))
            grid = images if grid is None else grid
        merged[self.primary] = sum(primaries) / len(primaries)
        return merged, grid


def base_evaluator(cfg: DataConfig, device: torch.device, val_set, teacher: Optional[nn.Module],
                   cache_dir: str):
    """The evaluator of ``cfg.eval_metric`` on ``val_set`` (None for "none")."""
    from compress.training.evaluation import Evaluator
    if val_set is None or cfg.eval_metric == "none":
        return None
    if cfg.eval_metric == "fidelity":
        if teacher is None:
            raise ValueError("eval_metric = \"fidelity\" compares with the teacher: set teacher = PATH")
        return FidelityEvaluator(val_set, teacher, device, cfg.eval_max_images, cfg.batch_size)
    palette = None
    if cfg.palette:
        from compress.common.palettes import load_palette
        palette = load_palette(cfg.palette)
    return Evaluator(val_set, cfg.eval_metric, device, max_images=cfg.eval_max_images,
                     batch_size=cfg.batch_size, paired=cfg.paired, cache_dir=cache_dir,
                     segmenter_path=cfg.segmenter,
                     num_classes=palette.num_classes if palette else None,
                     ignore_id=palette.ignore_id if palette else None)


def make_evaluator(cfg: StageConfig, ctx, val_set, train_set, teacher: nn.Module, plan: StudentPlan):
    from compress.training.evaluation import cache_folder
    base = base_evaluator(cfg, ctx.device, val_set, teacher, cache_folder(cfg.output_dir))
    if base is None:
        return None
    calibrate = None
    if plan.calibrate:
        def calibrate(config) -> None:
            calibrate_batchnorm(plan.student, calibration_batches(train_set, cfg.calibration_images,
                                                                  cfg.batch_size), config)
    return ConfigEvaluator(base, plan.eval_configs, plan.student, calibrate)


# ----------------------------------------------------------------------------- export and run folder

def make_exporter(cfg: DataConfig, size_hw: Tuple[int, int], extra_meta: Dict[str, Any]):
    """exporter(name, generator, path, extra): a clean CPU copy written with `save_generator`."""
    from compress.models.checkpoints import build_kwargs_of, generator_metadata, save_generator
    from compress.models import arch_name, build_generator
    from compress.data import default_input_kind
    cached: Dict[str, Dict[str, Any]] = {}
    input_kind = default_input_kind(cfg.input_kind, cfg.dataset_mode, cfg.palette, cfg.direction)

    def export(name: str, generator: nn.Module, path: str, extra: Dict[str, Any]) -> None:
        copy = build_generator(arch_name(generator), **build_kwargs_of(generator))
        copy.load_state_dict({k: v.detach().cpu() for k, v in generator.state_dict().items()})
        copy.eval()
        if name not in cached:
            cached[name] = generator_metadata(copy, resolution=size_hw, palette=cfg.palette,
                                              input_kind=input_kind, **extra_meta)
        save_generator(copy, path, meta=dict(cached[name], **extra), overwrite=True)
    return export


class StageTrainer(Trainer):
    """The engine's trainer, exporting the final student as ``<name>.safetensors``."""

    def export_path(self, name: str, tag: str) -> str:
        file_name = f"{name}.safetensors" if tag == "final" else f"{name}_{tag}.safetensors"
        return os.path.join(self.run_dir, file_name)


def stage_outputs(export_name: str) -> List[str]:
    return [STATE_FILE, "metrics.json", f"{export_name}.safetensors", f"{export_name}_best.safetensors",
            "discriminator.safetensors", "adaptors.safetensors", "tensorboard", "real_stats"]


def prepare_run_dir(cfg: StageConfig, export_name: str, force: bool, command: str) -> None:
    """Start over (--force), check a resumed run's settings, write the resolved config."""
    outputs = stage_outputs(export_name)
    run_folder.prepare_run_dir(cfg, outputs, outputs[1:6], force, command, RESUMABLE_CHANGES)


def build_stage_trainer(cfg: StageConfig, ctx, stage: Stage, force: bool = False,
                        step_callback: Optional[Callable[[int], None]] = None) -> StageTrainer:
    from compress.training.losses import VGGPerceptualLoss
    from compress.training import distributed as D
    from compress.training.recipe import init_weights
    from compress.training.state import seed_everything

    if ctx.is_main:
        prepare_run_dir(cfg, stage.export_name, force, f"compress.{stage.name}")
    D.barrier(ctx)
    notes: List[str] = []
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    train_set, val_set, held = build_datasets(cfg)
    sample = train_set[0]
    input_nc, size_hw = int(sample["A"].shape[0]), tuple(int(s) for s in sample["B"].shape[1:])
    teacher, teacher_meta = load_teacher(cfg.teacher, cfg.teacher_arch, ctx.device)
    if teacher.family == "resnet":  # fail now, not with a tensor size mismatch at step 1
        check_multiple(size_hw, 4, f"training crop for the {teacher_meta.get('arch')} teacher")
    if teacher.input_nc != input_nc:
        raise ValueError(f"{cfg.teacher} takes {teacher.input_nc}-channel inputs but the dataset gives "
                         f"{input_nc} channels; use the teacher's data settings (input_encoding, palette, "
                         "instance_edges)")
    seed_everything(cfg.seed)  # identical initial weights on every rank
    plan = stage.plan(cfg, teacher, input_nc, size_hw, notes.append)
    student = plan.student
    adaptors = None
    if cfg.lambda_distill > 0:
        adaptors = Adaptors(plan.adaptor_widths or feature_widths(student), feature_widths(teacher))
        init_weights(adaptors, "normal", cfg.init_gain)
        if cfg.restore_A:
            load_aux(adaptors, cfg.restore_A, "adaptors")
    discriminator = build_discriminator(cfg, student.family, input_nc, student.output_nc)
    init_weights(discriminator, cfg.init_type, cfg.init_gain)
    if cfg.restore_D:
        load_aux(discriminator, cfg.restore_D, "discriminator")
    vgg = None
    if student.family == "spade" and cfg.lambda_vgg > 0:
        if cfg.vgg_weights:
            vgg = VGGPerceptualLoss(cfg.vgg_weights)
        else:
            notes.append("VGG perceptual loss off: no local VGG19 weights (set vgg_weights = PATH)")
    recipe = DistillRecipe(
        student, teacher, discriminator, adaptors, ctx, layers=mapped_layers(student), paired=cfg.paired,
        sampler=plan.sampler, seed=cfg.seed, gan_mode=cfg.gan_mode, lambda_gan=cfg.lambda_gan,
        lambda_recon=cfg.lambda_recon, lambda_distill=cfg.lambda_distill, lambda_feat=cfg.lambda_feat,
        lambda_vgg=cfg.lambda_vgg, vgg=vgg, lambda_teacher_l1=cfg.lambda_teacher_l1,
        lambda_ssim=cfg.lambda_ssim, lambda_disc_feat=cfg.lambda_disc_feat,
        feature_terms=feature_terms(cfg), lambda_perceptual=cfg.lambda_perceptual,
        lambda_style=cfg.lambda_style, lambda_band=cfg.lambda_band,
        band_sigmas=(cfg.band_fine_sigma, cfg.band_coarse_sigma), cutmix_prob=cfg.cutmix_prob, lr_g=cfg.lr,
        lr_d=cfg.lr if cfg.lr_D is None else cfg.lr_D,
        betas=(cfg.beta1, cfg.beta2), export_name=stage.export_name)
    meta = dict(stage=stage.name, trained_with=f"compress.{stage.name}", teacher=cfg.teacher,
                teacher_arch=teacher_meta.get("arch"),
                dataset=os.path.basename(os.path.normpath(cfg.dataroot)),
                dataset_mode=cfg.dataset_mode, holdout={"items": cfg.holdout_items, "seed": cfg.holdout_seed},
                **plan.meta)
    trainer = StageTrainer(
        recipe, train_set, ctx, run_dir=cfg.output_dir, batch_size=cfg.batch_size, nepochs=cfg.nepochs,
        nepochs_decay=cfg.nepochs_decay, seed=cfg.seed, num_workers=cfg.num_workers,
        save_every_steps=cfg.save_every_steps, max_steps=cfg.max_steps, log_every_steps=cfg.log_every_steps,
        image_every_steps=cfg.image_every_steps,
        evaluator=make_evaluator(cfg, ctx, val_set, train_set, teacher, plan),
        eval_every_epochs=cfg.eval_every_epochs, exporter=make_exporter(cfg, size_hw, meta),
        tensorboard=cfg.tensorboard, step_callback=step_callback, description=stage.name)
    if ctx.is_main:
        params = sum(p.numel() for p in student.parameters())
        tqdm.write(f"{stage.name}: {type(student).__name__} ngf {getattr(student, 'ngf', '-')} "
                   f"({params / 1e6:.2f}M params) from {teacher_meta.get('arch')} {cfg.teacher}, "
                   f"{len(train_set)} training items at {size_hw[0]}x{size_hw[1]}"
                   + (f" ({len(held)} held out)" if held else "")
                   + f", {trainer.steps_per_epoch} steps/epoch x {trainer.total_epochs} epochs on "
                     f"{ctx.device}"
                   + (f" x {ctx.world_size} processes" if ctx.distributed else ""))
        for line in notes:
            tqdm.write(line)
    return trainer


def run_stage(cfg: StageConfig, stage: Stage, force: bool = False,
              step_callback: Optional[Callable[[int], None]] = None) -> int:
    """Train a stage; exit code 0 (done, or stopped at max_steps) or 128 + signal number."""
    from compress.training import distributed as D
    ctx = D.setup(cfg.device)
    try:
        trainer = build_stage_trainer(cfg, ctx, stage, force, step_callback)
        code = trainer.fit()
        if code == 0 and trainer.finished and ctx.is_main:
            aux_meta = {"stage": stage.name, "teacher": cfg.teacher}
            save_aux(trainer.recipe.modules["D"], os.path.join(cfg.output_dir, "discriminator.safetensors"),
                     dict(aux_meta, ndf=cfg.ndf, n_layers_D=cfg.n_layers_D))
            if "A" in trainer.recipe.modules:
                save_aux(trainer.recipe.modules["A"], os.path.join(cfg.output_dir, "adaptors.safetensors"),
                         aux_meta)
        return code
    finally:
        run_folder.release(cfg.output_dir)
        D.teardown(ctx)


def stage_main(argv, cls, run: Callable[[Any, bool], int], prog: str, description: str, examples: str) -> int:
    """The command line of a stage: ``CONFIG [--key=value ...] [--force]``."""
    parser = command_parser(prog, description,
                            examples + "\nsettings (TOML keys, or --key=value):\n" + describe_config(cls),
                            config_help="TOML config file (see configs/)",
                            force_help="start over / overwrite existing outputs")
    args, overrides = parse_command(parser, argv)
    return run_command(lambda: run(load_config(cls, args.config, overrides), args.force))
