"""Settings shared by the GAN Compression stages (distill, supernet, finetune, extract).

`DataConfig` holds the dataset keys (the same names as `compress.train.TrainConfig`, so a
teacher's TOML data block can be pasted); `StageConfig` adds the teacher, discriminator, loss
weights, optimiser and run control of a student-training stage. Each stage subclasses one of
them with its own keys (`compress.distill.DistillConfig`, `compress.supernet.SupernetConfig`,
`compress.finetune.FinetuneConfig`, `compress.extract.ExtractConfig`).

Loss weights of the official scripts (set them in the stage's TOML):
  pix2pix edges2shoes / cityscapes: lambda_recon 100, lambda_distill 1, hinge, ndf 128
  pix2pix map2sat: lambda_recon 10, lambda_distill 0.01
  CycleGAN horse2zebra: lambda_recon 10, lambda_distill 0.01, lsgan, ndf 64
  GauGAN: lambda_recon 0, lambda_feat 10, lambda_vgg 10, lambda_distill 10, TTUR 1e-4 / 4e-4
"""
from dataclasses import dataclass
from typing import Optional, Tuple

from compress.common.config import check_ranges, option

DATASET_MODES = ("labelmap", "aligned", "unaligned", "cityscapes")
EVAL_METRICS = ("fid", "miou", "psnr", "fidelity", "none")


def check_choices(cfg, choices) -> None:
    for key, valid in choices.items():
        if getattr(cfg, key) not in valid:
            raise ValueError(f"{key} = {getattr(cfg, key)!r}: choose one of {', '.join(valid)}")


def check_positive(cfg, keys) -> None:
    for key in keys:
        if getattr(cfg, key) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(cfg, key)}")


@dataclass
class DataConfig:
    dataroot: str = option("", "dataset folder (layouts: docs/training.md)")
    dataset_mode: str = option("aligned", "labelmap | aligned | unaligned | cityscapes")
    direction: str = option("AtoB", "AtoB | BtoA")
    palette: Optional[str] = option(None, "label palette in assets/palettes (label-map datasets)")
    input_encoding: str = option("color", "label maps as generator input: color (pix2pix) | onehot (SPADE)")
    instance_edges: bool = option(False, "cityscapes + onehot: add the instance-boundary channel")
    load_size: Optional[int] = option(None, "resize width before cropping (height = width / aspect_ratio)")
    crop_size: Optional[int] = option(None, "training crop width; validation resizes to it")
    aspect_ratio: float = option(1.0, "width / height of load_size and crop_size")
    flip: bool = option(True, "random horizontal flips")
    max_items: Optional[int] = option(None, "use only the first N training items (smoke tests)")
    val_split: str = option("val", "split used for validation (folder name; unaligned: <split>A/B)")
    holdout_items: int = option(0, "training items held out for the search (upstream's train2); the "
                                   "student never trains on them")
    holdout_seed: int = option(0, "seed of the held-out selection (compress.data.holdout_split)")
    batch_size: int = option(4, "batch size per process")
    seed: int = option(233, "random seed (weights, data order, augmentation, sampled configs)")
    calibration_images: int = option(256, "SPADE: training images for batch-norm re-calibration of a "
                                           "sub-network before it is evaluated or exported")
    eval_metric: str = option("fid", "validation metric: fid | miou | psnr | fidelity (PSNR vs the "
                                     "teacher's output) | none")
    eval_max_images: int = option(50, "validation images per evaluation (keeps CPU runs fast)")
    segmenter: Optional[str] = option(None, "segmenter checkpoint for eval_metric = miou")
    input_kind: Optional[str] = option(None, "metadata of the exported generator: label | sketch | image "
                                             "(default from the dataset)")
    device: str = option("auto", "auto | cpu | cuda (torchrun: one GPU per process)")
    cpu_threads: Optional[int] = option(None, "intra-op CPU threads (default: torch's choice; 1 is much "
                                              "faster on a busy shared CPU)")

    def __post_init__(self) -> None:
        check_ranges(self)
        check_choices(self, {"dataset_mode": DATASET_MODES, "direction": ("AtoB", "BtoA"),
                             "input_encoding": ("color", "onehot"), "eval_metric": EVAL_METRICS})
        check_positive(self, ("batch_size", "eval_max_images", "calibration_images"))
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be >= 1, got {self.cpu_threads}")
        if self.holdout_items < 0:
            raise ValueError(f"holdout_items must be >= 0, got {self.holdout_items}")
        if self.input_kind not in (None, "label", "sketch", "image"):
            raise ValueError(f"input_kind must be label, sketch or image, got {self.input_kind!r}")
        if self.eval_metric == "psnr" and self.dataset_mode == "unaligned":
            raise ValueError("eval_metric = \"psnr\" needs paired data; use \"fidelity\" or \"fid\" for "
                             "unpaired (CycleGAN) students")

    @property
    def paired(self) -> bool:
        return self.dataset_mode != "unaligned"

    def size_hw(self, width: Optional[int]) -> Optional[Tuple[int, int]]:
        return None if width is None else (int(round(width / self.aspect_ratio)), int(width))


@dataclass
class StageConfig(DataConfig):
    # --- teacher
    teacher: str = option("", "teacher generator checkpoint (.safetensors of compress.train, or an "
                              "official .pth with teacher_arch)")
    teacher_arch: Optional[str] = option(None, "architecture of an official teacher .pth without metadata")
    # --- discriminator and losses
    ndf: int = option(64, "discriminator base width (upstream pix2pix 128, CycleGAN 64)")
    n_layers_D: int = option(3, "PatchGAN layers (GauGAN: 4)")
    num_D: int = option(2, "GauGAN: discriminator scales")
    norm_D: str = option("instance", "instance | batch | none (PatchGAN); spectralinstance (GauGAN)")
    gan_mode: str = option("hinge", "lsgan | hinge | vanilla (pix2pix: hinge, CycleGAN: lsgan)")
    lambda_gan: float = option(1.0, "weight of the student's GAN loss")
    lambda_recon: float = option(100.0, "weight of L1(student, target); target = ground truth (paired) or "
                                        "the teacher's output (unpaired)")
    lambda_distill: float = option(1.0, "weight of sum MSE(adaptor(student feature), teacher feature)")
    lambda_teacher_l1: float = option(0.0, "weight of L1(student output, teacher output): output "
                                           "distillation (not in the paper; 0 keeps its recipe)")
    lambda_ssim: float = option(0.0, "weight of 1 - SSIM(student output, teacher output) (OMGD's structural "
                                     "term; 0 keeps the paper's recipe)")
    cutmix_prob: float = option(0.0, "share of steps whose batch is CutMixed (same box in input and photo) "
                                     "before the teacher and student see it: function-matching "
                                     "distillation (not in the paper; 0 keeps its recipe)")
    lambda_feat: float = option(10.0, "SPADE: discriminator feature-matching weight")
    lambda_vgg: float = option(10.0, "SPADE: VGG19 perceptual weight (needs vgg_weights)")
    vgg_weights: Optional[str] = option(None, "SPADE: local VGG19 weights (torchvision vgg19-dcbedf5f.pth)")
    restore_D: Optional[str] = option(None, "start the discriminator from this discriminator.safetensors")
    restore_A: Optional[str] = option(None, "start the adaptors from this adaptors.safetensors")
    # --- optimisation
    init_type: str = option("normal", "weight init of new networks: normal | xavier | kaiming | orthogonal")
    init_gain: float = option(0.02, "std / gain of the weight init")
    lr: float = option(2e-4, "Adam learning rate of the student and adaptors")
    lr_D: Optional[float] = option(None, "Adam learning rate of the discriminator (default: lr)")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    nepochs: int = option(5, "epochs at the initial learning rate")
    nepochs_decay: int = option(15, "epochs of linear decay to zero afterwards")
    num_workers: int = option(0, "data-loading worker processes")
    # --- run control
    output_dir: str = option("runs/stage", "run folder: checkpoints, logs, exported generators")
    max_steps: Optional[int] = option(None, "stop (resumably) after this many steps in total")
    save_every_steps: int = option(500, "checkpoint interval in steps (also at every epoch end)")
    log_every_steps: int = option(20, "TensorBoard scalar interval in steps")
    image_every_steps: int = option(500, "TensorBoard image interval in steps")
    eval_every_epochs: int = option(1, "validate every N epochs (and after the last)")
    tensorboard: bool = option(True, "write TensorBoard logs")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"gan_mode": ("lsgan", "hinge", "vanilla"),
                             "init_type": ("normal", "xavier", "kaiming", "orthogonal")})
        if not self.dataroot:
            raise ValueError("dataroot is not set: give the dataset folder "
                             "(dataroot = \"...\" or --dataroot=...)")
        if not self.teacher:
            raise ValueError("teacher is not set: give the teacher generator checkpoint "
                             "(teacher = \"runs/.../G_final.safetensors\" or --teacher=...)")
        check_positive(self, ("ndf", "n_layers_D", "num_D", "save_every_steps", "log_every_steps",
                              "image_every_steps", "eval_every_epochs"))
        if self.nepochs < 0 or self.nepochs_decay < 0 or self.nepochs + self.nepochs_decay < 1:
            raise ValueError("nepochs and nepochs_decay must be >= 0 with at least one epoch in total")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        for key in ("lambda_gan", "lambda_recon", "lambda_distill", "lambda_feat", "lambda_vgg",
                    "lambda_teacher_l1", "lambda_ssim"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.cutmix_prob <= 1.0:
            raise ValueError(f"cutmix_prob must be in [0, 1], got {self.cutmix_prob}")
