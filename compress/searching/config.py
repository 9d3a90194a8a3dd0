"""The settings of a compression search (`SearchConfig`): what to search, how to score a
sub-network, the budget, the strategy and where the results go. A search config is a flat TOML of
these keys (``python -m compress.search CONFIG``); the pipeline writes one per run.
"""
import os
from dataclasses import dataclass
from typing import List, Optional

from compress.common.config import option
from compress.common.settings import DatasetSettings, DeviceSettings
from compress.searching.results import HIGHER_IS_BETTER

STRATEGIES = ("evolution", "exhaustive")
METRICS = tuple(HIGHER_IS_BETTER)
# settings that may change between a run and its resumption (they do not change any result row)
RESUMABLE_CHANGES = ("output_dir", "device", "cpu_threads", "batch_size", "generations", "latency_lut",
                     "latency_warmup", "latency_runs")
# an exhaustive search may also change its budget (rows outside it are left out of the tables);
# an evolution's population was drawn under its budget, so it must keep it
EXHAUSTIVE_RESUMABLE_CHANGES = RESUMABLE_CHANGES + ("budget_macs", "budget_latency_ms")


@dataclass
class SearchConfig(DeviceSettings, DatasetSettings):
    """The dataset (`compress.common.settings`: the one the supernet trained on; its held-out
    training pairs are scored, never val/test) and device, plus what only the search has."""
    # --- what to search
    supernet: str = option("", "supernet checkpoint (<supernet output_dir>/supernet.safetensors)")
    search_space: str = option("", "channel search space: empty = the one the supernet was trained on "
                                   "(its metadata); an official name (channels-64-pix2pix, channels-32, "
                                   "...); or custom (search_choices)")
    search_choices: List[str] = option([], "search_space = custom: each position's channel choices, "
                                           "e.g. [\"32_24_16\", ...] (8 entries)")
    strategy: str = option("evolution", "evolution | exhaustive")
    output_dir: str = option("runs/search", "folder of the log, tables, summary and caches")
    # --- held-out data
    crop_size: Optional[int] = option(None, "evaluation/MACs width (default: the supernet's resolution)")
    aspect_ratio: float = option(1.0, "width / height")
    max_items: Optional[int] = option(None, "use only the first N training items (as the supernet did)")
    holdout_items: Optional[int] = option(None, "training items held out for the search (default: the "
                                                "supernet's holdout_items, from its metadata)")
    holdout_seed: Optional[int] = option(None, "seed of the held-out split (default: the supernet's)")
    batch_size: int = option(8, "evaluation batch size")
    # --- metric
    metric: str = option("fid", "fid | kid | miou | fidelity (PSNR vs the teacher's outputs)")
    teacher: Optional[str] = option(None, "teacher checkpoint (metric fidelity)")
    segmenter: Optional[str] = option(None, "segmenter checkpoint (metric miou)")
    real_stats_dir: Optional[str] = option(None, "cache of real statistics (default <output_dir>/real_stats)")
    calibration_images: int = option(256, "SPADE: training images for batch-norm re-calibration")
    # --- budget
    budget_macs: Optional[float] = option(None, "MACs budget (paper convention, at the search size)")
    budget_latency_ms: Optional[float] = option(None, "measured-latency budget in ms")
    min_latency_ms: Optional[float] = option(None, "with budget_latency_ms: sub-networks faster than "
                                                   "this are outside the budget too (a ladder's slow rung)")
    latency_backend: str = option("onnxruntime", "onnxruntime | torch")
    latency_device: str = option("cpu", "cpu | cuda | cuda:N")
    latency_threads: Optional[int] = option(1, "threads of the timed runs (part of the LUT key)")
    latency_warmup: int = option(10, "untimed warm-up runs per measurement")
    latency_runs: int = option(50, "timed runs per measurement (the median is used)")
    latency_lut: Optional[str] = option(None, "latency LUT file (default <output_dir>/latency_lut.json)")
    # --- exhaustive
    num_shards: int = option(1, "exhaustive: split the space into N shards ...")
    shard: int = option(0, "... and search shard K (0-based); merge the tables afterwards")
    # --- evolution
    population: int = option(100, "evolution: population size")
    parents_fraction: float = option(0.25, "evolution: share of the population kept as parents")
    mutation_fraction: float = option(0.5, "evolution: share of children made by mutation (rest: crossover)")
    mutate_prob: float = option(0.2, "evolution: per-position resampling probability of a mutation "
                                     "(upstream default 0.2; its scripts use 0.3-0.4)")
    generations: int = option(500, "evolution: generations after the first population")
    weighted_sample: float = option(1.0, "evolution: >1 biases the first population to narrow widths, "
                                                "<1 to wide ones (a slow latency window)")
    weight_strategy: str = option("arithmetic", "evolution: arithmetic | geometric progression of those "
                                                "weights (upstream GauGAN: 3, geometric)")
    seed: int = option(0, "evolution: random seed")

    def __post_init__(self) -> None:
        super().__post_init__()
        choices = {"strategy": STRATEGIES, "metric": METRICS, "latency_backend": ("onnxruntime", "torch"),
                   "weight_strategy": ("arithmetic", "geometric")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ValueError(f"{key} = {getattr(self, key)!r}: choose one of {', '.join(valid)}")
        for key in ("supernet", "dataroot"):
            if not getattr(self, key):
                raise ValueError(f"{key} is not set (add `{key} = ...` to the TOML file or --{key}=...)")
        if self.metric == "fidelity" and not self.teacher:
            raise ValueError("metric = \"fidelity\" compares with the teacher: set teacher = \"PATH\"")
        if self.metric == "miou" and not (self.segmenter and self.palette):
            raise ValueError("metric = \"miou\" needs segmenter = \"PATH\" and the dataset's palette")
        if self.strategy == "evolution" and self.num_shards != 1:
            raise ValueError("num_shards splits the exhaustive search; evolution runs as one process")
        for key in ("batch_size", "population", "num_shards", "latency_runs", "calibration_images"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.holdout_items is not None and self.holdout_items < 1:
            raise ValueError(f"holdout_items must be >= 1, got {self.holdout_items}")
        if not 0 <= self.shard < self.num_shards:
            raise ValueError(f"shard must be in [0, {self.num_shards - 1}], got {self.shard}")
        for key in ("budget_macs", "budget_latency_ms"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0 (or unset), got {getattr(self, key)}")
        if self.min_latency_ms is not None and not (self.budget_latency_ms is not None
                                                    and 0 < self.min_latency_ms < self.budget_latency_ms):
            raise ValueError(f"min_latency_ms ({self.min_latency_ms}) needs a larger budget_latency_ms "
                             f"(got {self.budget_latency_ms}): the two bound a latency window")

    def suffix(self) -> str:
        return "" if self.num_shards == 1 else f".shard{self.shard}of{self.num_shards}"

    def path(self, name: str) -> str:
        """``name`` ("search_log.jsonl") in output_dir, with the shard suffix before the extension."""
        stem, ext = os.path.splitext(name)
        return os.path.join(self.output_dir, stem + self.suffix() + ext)
