"""What the compression search measures per candidate: its cost (MACs, latency) and its quality.

`CostModel` answers "does this config fit the budget?": paper-convention MACs of the standalone
sub-network (`compress.models.profile.count_macs`), cached per config in a JSON file, and optionally
the measured latency of that sub-network (`compress.searching.latency`, cached in a latency LUT).
Conv-net MACs scale exactly with the input area when every feature map shrinks by the same
factor, so configs are profiled at a small "probe" size that divides the real one and scaled
up; the first profile of a run checks that identity against a full-size profile and falls back
to full-size profiling if it ever fails.

`CandidateEvaluator` scores a config of the supernet on held-out training images:
  "fid" / "kid"  Inception statistics of the outputs vs the held-out real B images (cached);
  "miou"         a segmenter's labels of the outputs vs the input label maps;
  "fidelity"     PSNR of the outputs vs the teacher's outputs on the same inputs.
SPADE supernets get their batch-norm statistics re-calibrated under each config first.
"""
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from compress.common.atomic import atomic_write_text
from compress.searching.latency import LatencyLUT, cached_latency, network_tag
from compress.searching.results import within_latency
from compress.models.search_space import encode_config
from compress.models.profile import count_macs, human

Batch = Dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- cost

def probe_size(size_hw: Tuple[int, int], multiple: int, min_side: int) -> Tuple[int, int]:
    """The smallest (H/k, W/k) that keeps both sides multiples of ``multiple`` and >= ``min_side``."""
    height, width = size_hw
    if height % multiple or width % multiple:
        return height, width
    common = math.gcd(height // multiple, width // multiple)
    for k in sorted((d for d in range(1, common + 1) if common % d == 0), reverse=True):
        if min(height, width) // k >= min_side:
            return height // k, width // k
    return height, width


class CostModel:
    """MACs (always) and latency (with ``measure``) of configs, and the budget test ``fits``.

    Args:
        supernet: the supernet (only ``make_subnet`` is used: weights do not matter here).
        size_hw: input size (height, width) of MACs and latency.
        cache_path: JSON file caching {config: {macs, true_macs, params}} (None: memory only).
        budget_macs / budget_latency_ms: the budget (None: unbounded).
        measure: latency callable (`compress.searching.latency.LatencyMeasurer`); needed for a latency budget.
        lut: where latencies are remembered.
    """

    def __init__(self, supernet: nn.Module, size_hw: Tuple[int, int], cache_path: Optional[str] = None,
                 budget_macs: Optional[float] = None, budget_latency_ms: Optional[float] = None,
                 measure: Optional[Callable[..., float]] = None, lut: Optional[LatencyLUT] = None,
                 min_latency_ms: Optional[float] = None):
        if budget_latency_ms is not None and measure is None:
            raise ValueError("a latency budget needs a latency measurer")
        self.supernet, self.size_hw = supernet, (int(size_hw[0]), int(size_hw[1]))
        self.cache_path = cache_path
        self.budget_macs, self.budget_latency_ms = budget_macs, budget_latency_ms
        self.min_latency_ms = min_latency_ms  # a window's lower end (with budget_latency_ms)
        self.measure = measure
        self.lut = lut if lut is not None else LatencyLUT(None)
        self.profiles: Dict[str, Dict[str, int]] = {}
        self._unsaved = 0
        self.latency_measurements = 0
        self.network = network_tag(supernet)
        if cache_path and os.path.isfile(cache_path):
            try:
                with open(cache_path, encoding="utf-8") as handle:
                    data = json.load(handle)
                if data.get("size") == list(self.size_hw) and data.get("network") == self.network:
                    self.profiles = data["profiles"]
            except (OSError, ValueError, KeyError, AttributeError):
                self.profiles = {}  # a damaged cache is only lost time: profile again
        family = getattr(supernet, "family", "resnet")
        if family == "spade":
            multiple = 2 ** supernet.num_upsamplings  # the latent grid needs >= 2 px (instance norms)
            self.probe_hw = probe_size(self.size_hw, multiple, 2 * multiple)
        else:  # two stride-2 convs; the trunk needs >= 2 px for its reflection pads
            self.probe_hw = probe_size(self.size_hw, 4, 8)
        self._probe_checked = self.probe_hw == self.size_hw

    def _count(self, config: str, size_hw: Tuple[int, int]) -> Dict[str, int]:
        subnet = self.supernet.make_subnet(config)
        return count_macs(subnet, (1, subnet.input_nc, size_hw[0], size_hw[1]))

    def profile(self, config) -> Dict[str, int]:
        """{"macs", "true_macs", "params"} of ``config`` at ``size_hw`` (cached)."""
        key = encode_config(config) if not isinstance(config, str) else config
        if key in self.profiles:
            return self.profiles[key]
        if not self._probe_checked:
            full = self._count(key, self.size_hw)
            scaled = self._scaled(self._count(key, self.probe_hw))
            if scaled != full:  # the area identity failed: never probe in this run
                self.probe_hw = self.size_hw
            self._probe_checked = True
            result = full
        elif self.probe_hw == self.size_hw:
            result = self._count(key, self.size_hw)
        else:
            result = self._scaled(self._count(key, self.probe_hw))
        self.profiles[key] = result
        self._unsaved += 1
        if self._unsaved >= 100:
            self.save()
        return result

    def _scaled(self, counts: Dict[str, int]) -> Dict[str, int]:
        area = self.size_hw[0] * self.size_hw[1]
        probe = self.probe_hw[0] * self.probe_hw[1]
        factor = area // probe
        return {"macs": int(counts["macs"]) * factor, "true_macs": int(counts["true_macs"]) * factor,
                "params": int(counts["params"])}

    def save(self) -> None:
        if self.cache_path and self._unsaved:
            data = {"size": list(self.size_hw), "network": self.network, "profiles": self.profiles}
            text = json.dumps(data, sort_keys=True)
            atomic_write_text(self.cache_path, text + "\n", overwrite=True)
        self._unsaved = 0

    def latency(self, config) -> float:
        """Median measured latency of ``config``'s standalone sub-network, in ms (LUT-cached)."""
        if self.measure is None:
            raise ValueError("no latency measurer configured")
        key = encode_config(config) if not isinstance(config, str) else config
        latency_ms, measured = cached_latency(self.lut, self.measure, key, self.size_hw,
                                              lambda: self.supernet.make_subnet(key), self.network)
        self.latency_measurements += int(measured)
        return latency_ms

    def costs(self, config) -> Dict[str, Any]:
        """MACs, true MACs, params and (with a latency budget) latency_ms of ``config``."""
        row: Dict[str, Any] = dict(self.profile(config))
        row["latency_ms"] = self.latency(config) if self.budget_latency_ms is not None else None
        return row

    def fits(self, config) -> bool:
        """Within the budget? MACs are checked first: a config over the MACs budget is never timed."""
        if self.budget_macs is not None and self.profile(config)["macs"] > self.budget_macs:
            return False
        if self.budget_latency_ms is not None:
            return within_latency(self.latency(config), self.budget_latency_ms, self.min_latency_ms)
        return True

    def check_budget(self, smallest: Sequence[int], where: str = "search") -> None:
        """ValueError when even the space's smallest config exceeds the budget."""
        config = encode_config(smallest)
        if self.budget_macs is not None:
            macs = self.profile(config)["macs"]
            if macs > self.budget_macs:
                raise ValueError(
                    f"{where}: budget_macs = {self.budget_macs:g} is below the MACs of the smallest "
                    f"config {config} ({macs:,} = {human(macs)} at {self.size_hw[0]}x{self.size_hw[1]}); "
                    f"raise budget_macs to at least {macs:g} or choose a smaller search space")
        if self.budget_latency_ms is not None:
            latency_ms = self.latency(config)
            if latency_ms > self.budget_latency_ms:
                raise ValueError(
                    f"{where}: budget_latency_ms = {self.budget_latency_ms:g} is below the measured "
                    f"latency of the smallest config {config} ({latency_ms:.3f} ms); raise it")


# ----------------------------------------------------------------------------- quality

class CandidateEvaluator:
    """Scores configs of ``supernet`` on fixed held-out inputs.

    Args:
        supernet: the supernet, in eval mode, on ``device``.
        metric: "fid" | "kid" | "miou" | "fidelity".
        batches: held-out batches, each {"A": inputs, and "label" for mIoU} (CPU tensors),
            iterable more than once (a list or `HeldOutBatches`).
        real_stats: for fid/kid: {"mu", "sigma", "features"} of the held-out real images.
        teacher: for fidelity: the teacher generator (its outputs are computed once).
        segment: for miou: uint8 images -> class ids; num_classes / ignore_id of the palette.
        calibrate: for SPADE: ``calibrate(supernet, config)`` re-estimates batch-norm statistics.
    """

    def __init__(self, supernet: nn.Module, metric: str, batches: Sequence[Batch], device: torch.device,
                 real_stats: Optional[Dict[str, np.ndarray]] = None, teacher: Optional[nn.Module] = None,
                 segment: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 num_classes: Optional[int] = None, ignore_id: Optional[int] = None,
                 calibrate: Optional[Callable[[nn.Module, str], None]] = None):
        if len(batches) == 0:
            raise ValueError("no held-out images to evaluate on")
        self.supernet, self.metric, self.batches, self.device = supernet, metric, batches, device
        self.real_stats, self.segment = real_stats, segment
        self.num_classes, self.ignore_id = num_classes, ignore_id
        self.calibrate = calibrate
        self.teacher_outputs: Optional[List[torch.Tensor]] = None
        if metric in ("fid", "kid") and real_stats is None:
            raise ValueError(f"metric {metric!r} needs real statistics")
        if metric == "miou" and (segment is None or num_classes is None):
            raise ValueError("metric \"miou\" needs a segmenter and a label palette")
        if metric == "fidelity":
            if teacher is None:
                raise ValueError("metric \"fidelity\" needs the teacher checkpoint (teacher = \"PATH\")")
            self.teacher_outputs = self._run(teacher.to(device).eval(), None)
            teacher.to("cpu")

    @torch.no_grad()
    def _run(self, model: nn.Module, config: Optional[str]) -> List[torch.Tensor]:
        outputs = []
        for batch in self.batches:
            x = batch["A"].to(self.device)
            out = model(x) if config is None else model(x, config)
            outputs.append(out.float().cpu())
        return outputs

    def __call__(self, config) -> Tuple[float, Dict[str, float]]:
        """(metric value, extra values) of ``config``."""
        from compress.metrics import to_uint8_images
        key = encode_config(config) if not isinstance(config, str) else config
        self.supernet.eval()
        if self.calibrate is not None:
            self.calibrate(self.supernet, key)
            self.supernet.eval()
        outputs = self._run(self.supernet, key)
        if self.metric == "fidelity":
            from compress.metrics import psnr
            assert self.teacher_outputs is not None
            values = [psnr(out, ref, data_range=2.0) * len(out)
                      for out, ref in zip(outputs, self.teacher_outputs)]
            return float(sum(values) / sum(len(o) for o in outputs)), {}
        images = np.concatenate([to_uint8_images(out) for out in outputs])
        if self.metric == "miou":
            from compress.metrics import miou
            assert self.segment is not None and self.num_classes is not None
            labels = np.concatenate([b["label"].numpy() for b in self.batches])
            return float(miou(self.segment(images), labels, self.num_classes, self.ignore_id)), {}
        from compress.metrics import fid_from_features, inception_features, kid_from_features
        assert self.real_stats is not None
        features = inception_features(images, device=str(self.device))
        kid = kid_from_features(features, self.real_stats["features"], subsets=20)[0]
        if self.metric == "kid":
            return float(kid), {}
        return float(fid_from_features(features, self.real_stats)), {"kid": float(kid)}


class HeldOutBatches:
    """Batches of ``keys`` of items ``indices`` of ``dataset``, iterable any number of times.

    They are read once and kept in memory when they fit in ``memory_limit_bytes`` (the usual
    case: the held-out split is small), else read from disk again on every pass (e.g. 200
    one-hot Cityscapes maps at 512x256 would take ~3.8 GB).
    """

    def __init__(self, dataset, indices: Sequence[int], batch_size: int, keys: Sequence[str],
                 memory_limit_bytes: int = 1 << 30, desc: str = "loading"):
        self.dataset, self.indices = dataset, list(indices)
        self.batch_size, self.keys, self.desc = batch_size, tuple(keys), desc
        if not self.indices:
            raise ValueError("no held-out items to evaluate on")
        item = dataset[self.indices[0]]
        item_bytes = sum(item[k].numel() * item[k].element_size() for k in self.keys if k in item)
        self.cached: Optional[List[Batch]] = None
        if item_bytes * len(self.indices) <= memory_limit_bytes:
            self.cached = list(self._read(progress=True))

    def _read(self, progress: bool = False):
        starts = range(0, len(self.indices), self.batch_size)
        for start in tqdm(starts, desc=self.desc, unit="batch", leave=False,
                          disable=not progress or len(starts) <= 1):
            items = [self.dataset[i] for i in self.indices[start:start + self.batch_size]]
            yield {k: torch.stack([item[k] for item in items]) for k in self.keys if k in items[0]}

    def __iter__(self):
        return iter(self.cached) if self.cached is not None else self._read()

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)
