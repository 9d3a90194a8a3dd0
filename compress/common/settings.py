"""The settings that several commands share, each declared once, as small dataclasses that a
command's config combines by inheritance (`compress.train.TrainConfig`,
`compress.distillation.stage_config.StageConfig`, `compress.searching.config.SearchConfig`, ...).

- `DatasetSettings`: which dataset and how its pairs are read;
- `TrainingDataSettings`: + the training-time resize / crop / flip and the validation split;
- `DiscriminatorSettings`: the PatchGAN and its loss;
- `BatchSettings`: batch size and seed; `OptimizerSettings` adds initialisation, Adam, the epoch
  schedule and data-loading workers;
- `DeviceSettings`: device and CPU threads; `EvaluationSettings` adds the validation metric, the
  segmenter behind mIoU and the exported generator's input kind;
- `RunSettings`: run folder, checkpoints, logging, validation interval.

The TOML stays flat (one ``key = value`` per setting) and the resolved ``config.toml`` of a run
lists the settings in the order of these groups. Each group checks its own values in
``__post_init__``; the calls chain through ``super()``, so a config that combines several groups
runs every group's checks once.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

from compress.common.config import check_ranges, option

DATASET_MODES = ("labelmap", "aligned", "unaligned", "cityscapes")
DIRECTIONS = ("AtoB", "BtoA")
INPUT_ENCODINGS = ("color", "onehot")
INPUT_KINDS = ("label", "sketch", "image")
GAN_MODES = ("lsgan", "hinge", "vanilla")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
EVAL_METRICS = ("fid", "miou", "psnr", "fidelity", "none")
# settings a training run may change when it resumes: they do not alter what is trained
RESUMABLE_CHANGES = ("max_steps", "save_every_steps", "log_every_steps", "image_every_steps", "num_workers",
                     "device", "cpu_threads", "tensorboard", "eval_every_epochs", "eval_max_images",
                     "output_dir")


def check_choices(cfg: Any, choices: Dict[str, Sequence[str]]) -> None:
    for key, valid in choices.items():
        if getattr(cfg, key) not in valid:
            raise ValueError(f"{key} = {getattr(cfg, key)!r}: choose one of {', '.join(valid)}")


def check_positive(cfg: Any, keys: Sequence[str]) -> None:
    for key in keys:
        if getattr(cfg, key) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(cfg, key)}")


def require(cfg: Any, key: str, hint: str) -> None:
    """ValueError unless ``key`` is set; ``hint`` says what to give."""
    if not getattr(cfg, key):
        raise ValueError(f"{key} is not set: give {hint} ({key} = \"...\" or --{key}=...)")


@dataclass
class Settings:
    """The root of the groups: the range checks shared by name (`check_ranges`: sizes, batch
    size, threads, learning rates, ...), run once; the groups add only what it does not cover."""

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class DatasetSettings(Settings):
    dataroot: str = option("", "dataset folder (layouts: docs/training.md)")
    dataset_mode: str = option("aligned", "labelmap | aligned | unaligned | cityscapes")
    direction: str = option("AtoB", "AtoB | BtoA")
    palette: Optional[str] = option(None, "label palette in assets/palettes (label-map datasets)")
    input_encoding: str = option("color", "label maps as generator input: color (pix2pix) | onehot (SPADE)")
    instance_edges: bool = option(False, "cityscapes + onehot: add the instance-boundary channel")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"dataset_mode": DATASET_MODES, "direction": DIRECTIONS,
                             "input_encoding": INPUT_ENCODINGS})

    @property
    def paired(self) -> bool:
        return self.dataset_mode != "unaligned"


@dataclass
class TrainingDataSettings(DatasetSettings):
    load_size: Optional[int] = option(None, "resize width before cropping (height = width / aspect_ratio)")
    crop_size: Optional[int] = option(None, "training crop width; validation resizes to it")
    aspect_ratio: float = option(1.0, "width / height of load_size and crop_size")
    flip: bool = option(True, "random horizontal flips")
    max_items: Optional[int] = option(None, "use only the first N training items (smoke tests)")
    val_split: str = option("val", "split used for validation (folder name; unaligned: <split>A/B)")

    def size_hw(self, width: Optional[int]) -> Optional[Tuple[int, int]]:
        return None if width is None else (int(round(width / self.aspect_ratio)), int(width))


@dataclass
class DiscriminatorSettings(Settings):
    ndf: int = option(64, "discriminator base width (upstream pix2pix 128, CycleGAN 64)")
    n_layers_D: int = option(3, "PatchGAN layers (GauGAN: 4)")
    num_D: int = option(2, "GauGAN: discriminator scales")
    norm_D: str = option("instance", "instance | batch | none (PatchGAN); spectralinstance (GauGAN)")
    gan_mode: str = option("hinge", "lsgan | hinge | vanilla (pix2pix: hinge, CycleGAN: lsgan; GauGAN "
                                    "always hinge)")
    lambda_feat: float = option(10.0, "GauGAN / SPADE: discriminator feature-matching weight")
    lambda_vgg: float = option(10.0, "GauGAN / SPADE: VGG19 perceptual weight (needs vgg_weights)")
    vgg_weights: Optional[str] = option(None, "GauGAN / SPADE: local VGG19 weights (torchvision "
                                              "vgg19-dcbedf5f.pth)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"gan_mode": GAN_MODES})
        check_positive(self, ("ndf", "n_layers_D", "num_D"))


@dataclass
class BatchSettings(Settings):
    batch_size: int = option(4, "batch size per process")
    seed: int = option(233, "random seed (weights, data order, augmentation, sampled configs)")


@dataclass
class OptimizerSettings(BatchSettings):
    init_type: str = option("normal", "weight init of new networks: normal | xavier | kaiming | orthogonal")
    init_gain: float = option(0.02, "std / gain of the weight init")
    lr: float = option(2e-4, "Adam learning rate of the generator (and adaptors)")
    lr_D: Optional[float] = option(None, "Adam learning rate of the discriminator(s) (default: lr)")
    beta1: float = option(0.5, "Adam beta1")
    beta2: float = option(0.999, "Adam beta2")
    nepochs: int = option(5, "epochs at the initial learning rate")
    nepochs_decay: int = option(15, "epochs of linear decay to zero afterwards")
    num_workers: int = option(0, "data-loading worker processes")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"init_type": INIT_TYPES})
        if self.nepochs < 0 or self.nepochs_decay < 0 or self.nepochs + self.nepochs_decay < 1:
            raise ValueError("nepochs and nepochs_decay must be >= 0 with at least one epoch in total")


@dataclass
class DeviceSettings(Settings):
    device: str = option("auto", "auto | cpu | cuda (torchrun: one GPU per process)")
    cpu_threads: Optional[int] = option(None, "intra-op CPU threads (default: torch's choice; 1 is much "
                                              "faster on a busy shared CPU)")


@dataclass
class EvaluationSettings(DeviceSettings):
    eval_metric: str = option("fid", "validation metric: fid | miou | psnr | fidelity (PSNR vs the "
                                     "teacher's output; compression stages) | none")
    eval_max_images: int = option(50, "validation images per evaluation (keeps CPU runs fast)")
    segmenter: Optional[str] = option(None, "segmenter checkpoint for eval_metric = miou")
    input_kind: Optional[str] = option(None, "metadata of the exported generator: label | sketch | image "
                                             "(default from the dataset)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices(self, {"eval_metric": EVAL_METRICS})  # eval_max_images: check_ranges
        if self.input_kind not in (None,) + INPUT_KINDS:
            raise ValueError(f"input_kind must be label, sketch or image, got {self.input_kind!r}")


@dataclass
class RunSettings(Settings):
    output_dir: str = option("runs/train", "run folder: checkpoints, logs, exported generators")
    max_steps: Optional[int] = option(None, "stop (resumably) after this many steps in total")
    save_every_steps: int = option(500, "checkpoint interval in steps (also at every epoch end)")
    log_every_steps: int = option(20, "TensorBoard scalar interval in steps")
    image_every_steps: int = option(500, "TensorBoard image interval in steps")
    eval_every_epochs: int = option(1, "validate every N epochs (and after the last)")
    tensorboard: bool = option(True, "write TensorBoard logs")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive(self, ("save_every_steps", "log_every_steps", "image_every_steps",
                              "eval_every_epochs"))
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
