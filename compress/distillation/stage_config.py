"""Settings shared by the GAN Compression stages (distill, supernet, finetune, extract).

`DataConfig` combines the dataset, batch and evaluation settings of `compress.common.settings`
(declared once there and shared with `compress.train.TrainConfig`, so a teacher's TOML data block
can be pasted) with the held-out split; `StageConfig` adds the discriminator, optimiser and run
settings, the teacher and the student's loss weights. Each stage subclasses one of
them with its own keys (`compress.distill.DistillConfig`, `compress.supernet.SupernetConfig`,
`compress.finetune.FinetuneConfig`, `compress.extract.ExtractConfig`).

Loss weights of the official scripts (set them in the stage's TOML):
  pix2pix edges2shoes / cityscapes: lambda_recon 100, lambda_distill 1, hinge, ndf 128
  pix2pix map2sat: lambda_recon 10, lambda_distill 0.01
  CycleGAN horse2zebra: lambda_recon 10, lambda_distill 0.01, lsgan, ndf 64
  GauGAN: lambda_recon 0, lambda_feat 10, lambda_vgg 10, lambda_distill 10, TTUR 1e-4 / 4e-4
"""
from dataclasses import dataclass
from typing import Optional

from compress.common.config import option
from compress.common.settings import (BatchSettings, DiscriminatorSettings, EvaluationSettings,
                                      OptimizerSettings, RunSettings, TrainingDataSettings, require)


@dataclass
class DataConfig(EvaluationSettings, BatchSettings, TrainingDataSettings):
    """What every stage reads (extract included): the dataset (`compress.common.settings`), the
    held-out pairs of the search and the SPADE batch-norm calibration."""
    holdout_items: int = option(0, "training items held out for the search (upstream's train2); the "
                                   "student never trains on them")
    holdout_seed: int = option(0, "seed of the held-out selection (compress.data.holdout_split)")
    calibration_images: int = option(256, "SPADE: training images for batch-norm re-calibration of a "
                                           "sub-network before it is evaluated or exported")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eval_metric == "psnr" and self.dataset_mode == "unaligned":
            raise ValueError("eval_metric = \"psnr\" needs paired data; use \"fidelity\" or \"fid\" for "
                             "unpaired (CycleGAN) students")


@dataclass
class StageConfig(RunSettings, OptimizerSettings, DiscriminatorSettings, DataConfig):
    # --- teacher
    teacher: str = option("", "teacher generator checkpoint (.safetensors of compress.train, or an "
                              "official .pth with teacher_arch)")
    teacher_arch: Optional[str] = option(None, "architecture of an official teacher .pth without metadata")
    # --- the student's losses
    lambda_gan: float = option(1.0, "weight of the student's GAN loss")
    lambda_recon: float = option(100.0, "weight of L1(student, target); target = ground truth (paired) or "
                                        "the teacher's output (unpaired)")
    lambda_distill: float = option(1.0, "weight of sum MSE(adaptor(student feature), teacher feature)")
    lambda_teacher_l1: float = option(0.0, "weight of L1(student output, teacher output): output "
                                           "distillation (not in the paper; 0 keeps its recipe)")
    lambda_ssim: float = option(0.0, "weight of 1 - SSIM(student output, teacher output) (OMGD's structural "
                                     "term; 0 keeps the paper's recipe)")
    lambda_disc_feat: float = option(0.0, "weight of L1 between the discriminator's hidden features on "
                                          "the student's and on the teacher's output: discriminator-"
                                          "feature distillation (not in the paper; 0 keeps its recipe)")
    lambda_perceptual: float = option(0.0, "weight of L1 between the student's and the teacher's outputs "
                                           "in a frozen segmenter's features (style_network; not in the "
                                           "paper; 0 keeps its recipe)")
    lambda_style: float = option(0.0, "weight of L1 between the Gram matrices of those features: "
                                      "texture statistics (OMGD's style term; 0 keeps the paper's recipe)")
    style_network: Optional[str] = option(None, "segmenter checkpoint whose encoder features feed "
                                                "lambda_perceptual / lambda_style (compress.train_segmenter)")
    lambda_band: float = option(0.0, "weight of L1 between the student's and the teacher's outputs after "
                                     "a difference of Gaussians (band_fine_sigma..band_coarse_sigma): "
                                     "mid-scale detail (not in the paper; 0 keeps its recipe)")
    band_fine_sigma: float = option(1.0, "lambda_band: the band's fine edge, Gaussian sigma in pixels")
    band_coarse_sigma: float = option(4.0, "lambda_band: the band's coarse edge, Gaussian sigma in pixels")
    cutmix_prob: float = option(0.0, "share of steps whose batch is CutMixed (same box in input and photo) "
                                     "before the teacher and student see it: function-matching "
                                     "distillation (not in the paper; 0 keeps its recipe)")
    restore_D: Optional[str] = option(None, "start the discriminator from this discriminator.safetensors")
    restore_A: Optional[str] = option(None, "start the adaptors from this adaptors.safetensors")
    # the stages' own default run folder (teacher training writes to runs/train)
    output_dir: str = option("runs/stage", "run folder: checkpoints, logs, exported generators")

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self, "dataroot", "the dataset folder")
        if not self.teacher:
            raise ValueError("teacher is not set: give the teacher generator checkpoint "
                             "(teacher = \"runs/.../G_final.safetensors\" or --teacher=...)")
        if (self.lambda_perceptual > 0 or self.lambda_style > 0) and not self.style_network:
            raise ValueError("lambda_perceptual / lambda_style compare features of a frozen segmenter: set "
                             "style_network = \"assets/models/facades/segmenter.safetensors\" (or your own)")
        if not 0 < self.band_fine_sigma < self.band_coarse_sigma:
            raise ValueError(f"band_fine_sigma ({self.band_fine_sigma}) must be > 0 and below "
                             f"band_coarse_sigma ({self.band_coarse_sigma})")
        if not 0.0 <= self.cutmix_prob <= 1.0:
            raise ValueError(f"cutmix_prob must be in [0, 1], got {self.cutmix_prob}")
