"""Train a teacher generator: pix2pix, CycleGAN or GauGAN (SPADE).

    python -m compress.train configs/facades_pix2pix.toml
    python -m compress.train configs/facades_pix2pix.toml --batch_size=8 --output_dir=runs/f8
    torchrun --nproc_per_node=4 -m compress.train configs/edges2shoes_pix2pix.toml

Settings come from `TrainConfig` (TOML file, then ``--key=value`` overrides; see
`compress.common.config`). The run folder (``output_dir``) receives the resolved ``config.toml``, the
resume checkpoint, TensorBoard logs, ``metrics.json`` and the exported generators
(``G_best.safetensors``, ``G_final.safetensors``, in the project's checkpoint format). Running
the same command again resumes an interrupted run; ``--force`` starts it over. The training
loop itself lives in `compress.training`.
"""
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from tqdm import tqdm

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import check_multiple, describe_config, load_config, option
from compress.common.settings import (RESUMABLE_CHANGES, DiscriminatorSettings, EvaluationSettings,
                                      OptimizerSettings, RunSettings, TrainingDataSettings, check_choices,
                                      check_positive, require)

MODELS = ("pix2pix", "cycle_gan", "gaugan")


@dataclass
class TrainConfig(RunSettings, EvaluationSettings, OptimizerSettings, DiscriminatorSettings,
                  TrainingDataSettings):
    """Dataset, discriminator, optimiser, evaluation and run settings (`compress.common.settings`),
    plus what only teacher training has: the model and its own losses."""
    # --- what to train
    model: str = option("pix2pix", "pix2pix | cycle_gan | gaugan")
    netG: str = option("resnet_9blocks", "generator architecture (compress.models.GENERATORS), "
                                         "e.g. resnet_9blocks, mobile_resnet_9blocks, spade")
    ngf: int = option(64, "generator base width")
    dropout_rate: float = option(0.0, "dropout in the ResNet blocks (upstream default 0)")
    num_upsampling_layers: str = option("normal", "SPADE: normal | more | most (latent grid = size / 2**n)")
    # --- the teacher's own losses
    lambda_l1: float = option(100.0, "pix2pix: weight of L1(G(A), B)")
    lambda_cycle: float = option(10.0, "CycleGAN: weight of the cycle losses")
    lambda_identity: float = option(0.5, "CycleGAN: identity loss weight, relative to lambda_cycle")
    pool_size: int = option(50, "CycleGAN: generated-image history for D (0 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "dataroot", "the dataset folder")
        check_choices(self, {"model": MODELS, "num_upsampling_layers": ("normal", "more", "most")})
        if self.eval_metric == "fidelity":
            raise ValueError("eval_metric = 'fidelity' compares a student with its teacher; a teacher's "
                             "training has none: choose one of fid, miou, psnr, none")
        if "resnet" in self.netG:  # two stride-2 downsamplings and two upsamplings
            key = "crop_size" if self.crop_size else "load_size"  # what enters the generator
            check_multiple(self.size_hw(getattr(self, key)), 4, f"{key} for {self.netG}")
        check_positive(self, ("ngf",))
        if self.model == "cycle_gan" and self.dataset_mode != "unaligned":
            raise ValueError("model = \"cycle_gan\" trains on unpaired data: "
                             "set dataset_mode = \"unaligned\"")
        if self.model != "cycle_gan" and self.dataset_mode == "unaligned":
            raise ValueError(f"model = \"{self.model}\" needs paired data; unaligned data is for cycle_gan")
        if self.model == "gaugan" and self.input_encoding != "onehot":
            raise ValueError("model = \"gaugan\" takes one-hot label maps: set input_encoding = \"onehot\"")


# ----------------------------------------------------------------------------- building blocks

def build_datasets(cfg: TrainConfig):
    """(train set, validation set or None)."""
    from compress.data import build_dataset
    common = dict(direction=cfg.direction, palette=cfg.palette, input_encoding=cfg.input_encoding,
                  instance_edges=cfg.instance_edges, seed=cfg.seed)
    train = build_dataset(cfg.dataset_mode, cfg.dataroot, "train", load_size=cfg.size_hw(cfg.load_size),
                          crop_size=cfg.size_hw(cfg.crop_size), flip=cfg.flip, max_items=cfg.max_items,
                          **common)
    if cfg.eval_metric == "none":
        return train, None
    # validation like upstream testing: resized straight to the crop size, no flip, no random crop
    val = build_dataset(cfg.dataset_mode, cfg.dataroot, cfg.val_split, flip=False, random_crop=False,
                        load_size=cfg.size_hw(cfg.crop_size or cfg.load_size), **common)
    return train, val


def build_generator_for(cfg: TrainConfig, input_nc: int, size_hw: Tuple[int, int]):
    from compress.models import GENERATORS, build_generator
    if cfg.netG not in GENERATORS:
        raise ValueError(f"netG = {cfg.netG!r}: choose one of {', '.join(GENERATORS)}")
    if "spade" in cfg.netG:
        height, width = size_hw
        return build_generator(cfg.netG, semantic_nc=input_nc, output_nc=3, ngf=cfg.ngf, crop_size=width,
                               aspect_ratio=width / height, num_upsampling_layers=cfg.num_upsampling_layers)
    if cfg.model == "gaugan":
        raise ValueError(f"model = \"gaugan\" needs a SPADE generator (netG = \"spade\"), got {cfg.netG!r}")
    return build_generator(cfg.netG, input_nc=input_nc, output_nc=3, ngf=cfg.ngf,
                           dropout_rate=cfg.dropout_rate)


def build_recipe(cfg: TrainConfig, ctx, input_nc: int, size_hw: Tuple[int, int], note: Callable[[str], None]):
    from compress.models.discriminators import MultiscaleDiscriminator, NLayerDiscriminator
    from compress.training.recipe import init_weights

    def init(module):
        init_weights(module, cfg.init_type, cfg.init_gain)
        return module

    lr_d = cfg.lr if cfg.lr_D is None else cfg.lr_D
    betas = (cfg.beta1, cfg.beta2)
    if cfg.model == "pix2pix":
        from compress.training.pix2pix import Pix2PixRecipe
        return Pix2PixRecipe(init(build_generator_for(cfg, input_nc, size_hw)),
                             init(NLayerDiscriminator(input_nc + 3, cfg.ndf, cfg.n_layers_D, cfg.norm_D)),
                             ctx, gan_mode=cfg.gan_mode, lambda_l1=cfg.lambda_l1, lr_g=cfg.lr, lr_d=lr_d,
                             betas=betas)
    if cfg.model == "cycle_gan":
        from compress.training.cycle_gan import CycleGANRecipe
        return CycleGANRecipe(init(build_generator_for(cfg, input_nc, size_hw)),
                              init(build_generator_for(cfg, 3, size_hw)),
                              init(NLayerDiscriminator(3, cfg.ndf, cfg.n_layers_D, cfg.norm_D)),
                              init(NLayerDiscriminator(input_nc, cfg.ndf, cfg.n_layers_D, cfg.norm_D)), ctx,
                              gan_mode=cfg.gan_mode, lambda_cycle=cfg.lambda_cycle,
                              lambda_identity=cfg.lambda_identity, pool_size=cfg.pool_size,
                              lr_g=cfg.lr, lr_d=lr_d, betas=betas)
    from compress.training.losses import VGGPerceptualLoss
    from compress.training.gaugan import GauGANRecipe
    vgg = None
    if cfg.lambda_vgg > 0:
        if cfg.vgg_weights:
            vgg = VGGPerceptualLoss(cfg.vgg_weights)
        else:
            note("VGG perceptual loss off: no local VGG19 weights (set vgg_weights = PATH to torchvision's "
                 "vgg19-dcbedf5f.pth to enable it)")
    discriminator = MultiscaleDiscriminator(input_nc + 3, cfg.ndf, cfg.n_layers_D, cfg.num_D, cfg.norm_D)
    return GauGANRecipe(init(build_generator_for(cfg, input_nc, size_hw)), init(discriminator), ctx,
                        lambda_feat=cfg.lambda_feat, lambda_vgg=cfg.lambda_vgg, vgg=vgg, lr_g=cfg.lr,
                        lr_d=lr_d, betas=betas)


def input_kind_of(cfg) -> str:
    """The input kind a generator trained with ``cfg`` records in its metadata."""
    from compress.data import default_input_kind
    return default_input_kind(cfg.input_kind, cfg.dataset_mode, cfg.palette, cfg.direction)


def make_exporter(cfg: TrainConfig, size_hw: Tuple[int, int]):
    """exporter(name, generator, path, extra): a clean CPU copy written with `save_generator`.
    The metadata (MACs, params: a trace of the model) is computed once per generator."""
    from compress.models.checkpoints import build_kwargs_of, generator_metadata, save_generator
    from compress.models import arch_name, build_generator
    cached: Dict[str, Dict[str, Any]] = {}

    def export(name: str, generator, path: str, extra: Dict[str, Any]) -> None:
        copy = build_generator(arch_name(generator), **build_kwargs_of(generator))
        copy.load_state_dict({k: v.detach().cpu() for k, v in generator.state_dict().items()})
        copy.eval()
        if name not in cached:
            main = name == "G"  # CycleGAN's G_B maps B -> A: plain images, no palette
            cached[name] = generator_metadata(
                copy, resolution=size_hw, palette=cfg.palette if main else None,
                input_kind=input_kind_of(cfg) if main else "image",
                trained_with=f"compress.train {cfg.model}",
                dataset=os.path.basename(os.path.normpath(cfg.dataroot)))
        save_generator(copy, path, meta=dict(cached[name], **extra), overwrite=True)
    return export


# ----------------------------------------------------------------------------- run folder

OUTPUTS = ("train_state.pt", "metrics.json", "G_best.safetensors", "G_final.safetensors",
           "G_B_best.safetensors", "G_B_final.safetensors", "tensorboard", "real_stats")


def prepare_run_dir(cfg: TrainConfig, force: bool) -> None:
    """Start over (--force), check a resumed run's settings, and write the resolved config."""
    from compress.training.run_dir import prepare_run_dir as prepare
    prepare(cfg, OUTPUTS, OUTPUTS[1:4], force, "compress.train", RESUMABLE_CHANGES)


def build_trainer(cfg: TrainConfig, ctx, force: bool = False,
                  step_callback: Optional[Callable[[int], None]] = None):
    """Data, networks, recipe, evaluator and `Trainer` for ``cfg`` in the process context ``ctx``."""
    from compress.training import distributed as D
    from compress.training.engine import Trainer
    from compress.training.evaluation import Evaluator, cache_folder
    from compress.training.state import seed_everything

    if ctx.is_main:
        prepare_run_dir(cfg, force)
    D.barrier(ctx)
    notes = []
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    train_set, val_set = build_datasets(cfg)
    sample = train_set[0]
    input_nc, size_hw = int(sample["A"].shape[0]), tuple(int(s) for s in sample["B"].shape[1:])
    seed_everything(cfg.seed)  # identical initial weights on every rank
    recipe = build_recipe(cfg, ctx, input_nc, size_hw, notes.append)
    evaluator = None
    if val_set is not None:
        palette = None
        if cfg.palette:
            from compress.common.palettes import load_palette
            palette = load_palette(cfg.palette)
        evaluator = Evaluator(val_set, cfg.eval_metric, ctx.device, max_images=cfg.eval_max_images,
                              batch_size=cfg.batch_size, paired=cfg.model != "cycle_gan",
                              cache_dir=cache_folder(cfg.output_dir), segmenter_path=cfg.segmenter,
                              num_classes=palette.num_classes if palette else None,
                              ignore_id=palette.ignore_id if palette else None)
    trainer = Trainer(recipe, train_set, ctx, run_dir=cfg.output_dir, batch_size=cfg.batch_size,
                      nepochs=cfg.nepochs, nepochs_decay=cfg.nepochs_decay, seed=cfg.seed,
                      num_workers=cfg.num_workers, save_every_steps=cfg.save_every_steps,
                      max_steps=cfg.max_steps, log_every_steps=cfg.log_every_steps,
                      image_every_steps=cfg.image_every_steps, evaluator=evaluator,
                      eval_every_epochs=cfg.eval_every_epochs, exporter=make_exporter(cfg, size_hw),
                      tensorboard=cfg.tensorboard, step_callback=step_callback, description=cfg.model)
    if ctx.is_main:
        params = sum(p.numel() for p in recipe.generators["G"].parameters())
        tqdm.write(f"{cfg.model}: {cfg.netG} ngf {cfg.ngf} ({params / 1e6:.2f}M params), "
                   f"{len(train_set)} training items at {size_hw[0]}x{size_hw[1]}, "
                   f"{trainer.steps_per_epoch} steps/epoch x "
                   f"{trainer.total_epochs} epochs on {ctx.device}"
                   + (f" x {ctx.world_size} processes" if ctx.distributed else ""))
        for line in notes:
            tqdm.write(line)
    return trainer


def train(cfg: TrainConfig, force: bool = False,
          step_callback: Optional[Callable[[int], None]] = None) -> int:
    """Train according to ``cfg``; returns the exit code (0 done/stopped at max_steps, 128+N on signal N)."""
    from compress.training import distributed as D
    from compress.training import run_dir
    ctx = D.setup(cfg.device)
    try:
        return build_trainer(cfg, ctx, force, step_callback).fit()
    finally:
        run_dir.release(cfg.output_dir)
        D.teardown(ctx)


# ----------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python -m compress.train configs/facades_pix2pix.toml
  python -m compress.train configs/facades_pix2pix.toml --ngf=16 --output_dir=runs/facades16
  python -m compress.train configs/horse2zebra_cyclegan.toml --dataroot=/data/horse2zebra
  torchrun --nproc_per_node=4 -m compress.train configs/edges2shoes_pix2pix.toml

Rerunning the same command resumes from <output_dir>/train_state.pt; Ctrl-C saves and stops.
See docs/training.md for dataset layouts.

settings (TOML keys, or --key=value):
"""


def main(argv=None) -> int:
    parser = command_parser(
        "python -m compress.train",
        "Train a pix2pix, CycleGAN or GauGAN teacher generator from a TOML config; the "
        "generator is exported to <output_dir>/G_final.safetensors (and G_best).",
        EXAMPLES + describe_config(TrainConfig), config_help="TOML config file (see configs/)",
        force_help="start over: delete the checkpoint and outputs in output_dir")
    args, overrides = parse_command(parser, argv)
    return run_command(lambda: train(load_config(TrainConfig, args.config, overrides), force=args.force))


if __name__ == "__main__":
    sys.exit(main())
