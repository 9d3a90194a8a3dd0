"""Diagnostic for issue 11: is the student's KID gap to its teacher a sharpness gap?

Scores, on the 38 facades validation pairs, the KID against the real photos of: the teacher, the
shipped student (v5), the teacher's outputs blurred with Gaussians of growing width, and v5's
outputs sharpened by an unsharp mask, next to each set's high-frequency energy (mean squared
Laplacian of the grey image). If blurring the teacher down to v5's high-frequency energy raises
its KID to v5's, and sharpening v5 lowers it, the gap is mostly sharpness. Hybrids (one set's
low-pass plus the other's high-pass) locate the frequency band that holds the gap.

    python assets/models/facades/provenance/kid_blur/blur_diagnostic.py \
        --output=assets/models/facades/provenance/kid_blur/blur_kid.json

A measurement, not a shipped method: post-processing is not what the student learns.
"""
import argparse
import json

import cv2
import numpy as np
import torch

from compress.evaluate import EvaluateConfig, _Split, _translate
from compress.metrics import inception_features
from compress.metrics.bootstrap import KidStatistic, paired_bootstrap
from compress.models.checkpoints import load_generator

MODELS = "assets/models/facades"


def hf_energy(images: np.ndarray) -> float:
    """Mean squared Laplacian of the grey images (uint8 N,H,W,3): a sharpness measure."""
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float64) for im in images]
    return float(np.mean([np.mean(cv2.Laplacian(g, cv2.CV_64F) ** 2) for g in grey]))


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(im, (0, 0), sigma) for im in images])


def sharpen(images: np.ndarray, amount: float, sigma: float = 1.0) -> np.ndarray:
    out = []
    for im in images:
        soft = cv2.GaussianBlur(im.astype(np.float64), (0, 0), sigma)
        out.append(np.clip(im + amount * (im - soft), 0, 255).round().astype(np.uint8))
    return np.stack(out)


def variants(outputs: dict) -> dict:
    """The image sets to score: both generators as they are, blurred and sharpened."""
    sets = dict(outputs)
    for sigma in (0.5, 0.7, 1.0):
        for name in ("teacher", "v5"):
            sets[f"{name}, Gaussian blur sigma {sigma}"] = blur(outputs[name], sigma)
    for amount in (0.5, 1.0, 2.0):
        sets[f"v5, unsharp mask amount {amount}"] = sharpen(outputs["v5"], amount)
    for sigma in (1.0, 2.0, 4.0):  # which frequency band holds the gap: swap the bands
        sets[f"teacher below sigma {sigma} + v5 above"] = hybrid(outputs["teacher"], outputs["v5"], sigma)
        sets[f"v5 below sigma {sigma} + teacher above"] = hybrid(outputs["v5"], outputs["teacher"], sigma)
    return sets


def hybrid(low_from: np.ndarray, high_from: np.ndarray, sigma: float) -> np.ndarray:
    """The Gaussian low-pass (``sigma``) of one set plus the high-pass remainder of the other."""
    low = blur(low_from.astype(np.float64), sigma)
    high = high_from.astype(np.float64) - blur(high_from.astype(np.float64), sigma)
    return np.clip(low + high, 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = EvaluateConfig(dataroot="../shared/datasets/facades/256", generators="x", metrics="kid")
    split = _Split(cfg, "facades", 128)
    real = inception_features(split.reals)
    outputs = {name: _translate(load_generator(f"{MODELS}/{file}")[0].eval(), split.inputs,
                                torch.device("cpu"), 8)
               for name, file in (("teacher", "original.safetensors"), ("v5", "compressed.safetensors"))}
    sets = variants(outputs)
    stats = {name: {"kid": KidStatistic(inception_features(images), real)} for name, images in sets.items()}
    intervals = paired_bootstrap(stats, len(split.reals), "teacher")  # 90 %, 1000 resamples, seed 0
    rows = {"real photos": {"hf_energy": hf_energy(split.reals)}}
    for name, images in sets.items():
        rows[name] = dict(kid=stats[name]["kid"](np.arange(len(images))), hf_energy=hf_energy(images),
                          **intervals[name])
    for name, row in rows.items():
        ratio = row.get("kid_ratio")
        print(f"{name:36s} hf {row['hf_energy']:8.1f}" + (f"  kid {row['kid']:.4f}" if "kid" in row else "")
              + (f"  / teacher {ratio:.3f} [{row['kid_ratio_interval'][0]:.3f}, "
                 f"{row['kid_ratio_interval'][1]:.3f}]" if ratio else ""))
    with open(args.output, "w") as f:
        json.dump({"items": len(split.reals), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
