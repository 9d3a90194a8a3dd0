"""Validation during training: translate a capped number of validation inputs and score them.

Metrics (``metric``):
  "fid"   FID (Inception pool3, `compress.metrics`) of the outputs against the validation
          targets (real statistics cached in the run folder); KID is reported beside it,
          since it is less biased than FID for the few tens of images a CPU run can afford.
  "miou"  mean IoU of a segmenter's predictions on the outputs against the input label maps
          (label-map datasets; ``segmenter`` = a checkpoint for `compress.metrics.segmenter`).
  "psnr"  PSNR of outputs vs targets (paired data only; cheap, used by smoke tests).
  "none"  no validation.
Paired datasets always report PSNR too. The primary metric decides the best checkpoint.
"""
import os
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

METRICS = ("fid", "miou", "psnr", "none")
HIGHER_IS_BETTER = {"fid": False, "miou": True, "psnr": True}

Translate = Callable[[torch.Tensor], torch.Tensor]


class Evaluator:
    def __init__(self, dataset: Dataset, metric: str, device: torch.device, *, max_images: int = 50,
                 batch_size: int = 4, paired: bool = True, cache_dir: Optional[str] = None,
                 segmenter_path: Optional[str] = None, num_classes: Optional[int] = None,
                 ignore_id: Optional[int] = None):
        if metric not in METRICS or metric == "none":
            raise ValueError(f"eval_metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if metric == "psnr" and not paired:
            raise ValueError("eval_metric = \"psnr\" needs paired data; "
                             "use \"fid\" for unpaired (CycleGAN) runs")
        if metric == "miou":
            if not segmenter_path:
                raise ValueError("eval_metric = \"miou\" needs segmenter = \"PATH\" (a segmenter checkpoint, "
                                 "see python -m compress.train_segmenter)")
            if num_classes is None:
                raise ValueError("eval_metric = \"miou\" needs a label-map dataset (a palette)")
        self.dataset, self.metric, self.device = dataset, metric, device
        self.count = min(max_images, len(dataset))
        if self.count < 2:
            raise ValueError(f"validation needs at least 2 images, got {self.count}")
        self.batch_size, self.paired = batch_size, paired
        self.cache_dir, self.segmenter_path = cache_dir, segmenter_path
        self.num_classes, self.ignore_id = num_classes, ignore_id
        self.primary = metric
        self.higher_is_better = HIGHER_IS_BETTER[metric]
        self._real_stats = None
        self._segmenter = None

    def _batches(self):
        for start in range(0, self.count, self.batch_size):
            items = [self.dataset[i] for i in range(start, min(start + self.batch_size, self.count))]
            yield {key: torch.stack([item[key] for item in items]) for key in ("A", "B", "label")
                   if key in items[0]}

    def _real_statistics(self, reals: np.ndarray) -> Dict[str, np.ndarray]:
        if self._real_stats is None:
            from compress.metrics import real_statistics
            height, width = reals.shape[1:3]
            key = f"val_real_{self.count}_{height}x{width}"
            self._real_stats = real_statistics(reals, key, cache_dir=self.cache_dir, device=str(self.device))
        return self._real_stats

    def _segment(self, images: np.ndarray) -> np.ndarray:
        from compress.metrics.segmenter import load_segmenter, segment  # lands with the segmenter milestone
        if self._segmenter is None:
            self._segmenter, _ = load_segmenter(self.segmenter_path)
        return np.asarray(segment(self._segmenter, images))

    def __call__(self, translate: Translate) -> Tuple[Dict[str, float], Optional[torch.Tensor]]:
        """Scores of ``translate`` (the generator, in eval mode, without gradients) and a small
        grid of [input, output, target] rows for TensorBoard."""
        from compress.metrics import to_uint8_images
        fakes: List[np.ndarray] = []
        reals: List[np.ndarray] = []
        labels: List[np.ndarray] = []
        grid: Optional[torch.Tensor] = None
        for batch in self._batches():
            fake = translate(batch["A"].to(self.device)).float().cpu()
            fakes.append(to_uint8_images(fake))
            reals.append(to_uint8_images(batch["B"]))
            if "label" in batch:
                labels.append(batch["label"].numpy())
            if grid is None:
                shown = batch["A"] if batch["A"].size(1) == 3 else torch.zeros_like(fake)
                grid = torch.stack([shown[:4], fake[:4], batch["B"][:4]], 1).flatten(0, 1)
        fake_u8, real_u8 = np.concatenate(fakes), np.concatenate(reals)
        metrics: Dict[str, float] = {}
        if self.paired:
            from compress.metrics import psnr
            metrics["psnr"] = psnr(fake_u8, real_u8)
        if self.metric == "fid":
            from compress.metrics import fid_from_features, inception_features, kid_from_features
            real = self._real_statistics(real_u8)
            features = inception_features(fake_u8, device=str(self.device))
            metrics["fid"] = fid_from_features(features, real)
            metrics["kid"] = kid_from_features(features, real["features"], subsets=20)[0]
        elif self.metric == "miou":
            from compress.metrics import miou
            predicted = self._segment(fake_u8)
            metrics["miou"] = miou(predicted, np.concatenate(labels), self.num_classes, self.ignore_id)
        return metrics, grid


def cache_folder(run_dir: str) -> str:
    return os.path.join(run_dir, "real_stats")
