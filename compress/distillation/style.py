"""Perceptual and style terms on the features of a frozen network of the project's own.

OMGD-style multi-granularity distillation adds, to pixel terms, terms that compare *features*
of the student's and the teacher's outputs: a perceptual term (L1 between the feature maps:
the same structures in the same places) and a style term (L1 between their Gram matrices:
the same texture statistics, wherever they are). Upstream uses an ImageNet VGG for both; this
project downloads nothing, so the features come from a network it trains itself: the
segmenter of `compress.metrics.segmenter` (`UNetSegmenter.encoder_features`, one map per
level), trained on the dataset's own photos.

    terms = FeatureTerms(load_segmenter(path)[0])
    perceptual, style = terms(student_out, teacher_out)      # both scalars, teacher side constant

The network is frozen (eval mode: its batch-norm statistics are fixed; no gradients for its
weights) while gradients flow through it into the student. It is the same network the mIoU
metric uses: a model card must say so when it reports mIoU of a student trained with these
terms (KID, from the offline Inception, stays independent of training).
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn


def gram(features: torch.Tensor) -> torch.Tensor:
    """(N, C, C) channel correlations of (N, C, H, W) features, normalised by C * H * W."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class FeatureTerms(nn.Module):
    """``(student, teacher) -> (perceptual, style)``: sums over the extractor's levels."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        if not hasattr(extractor, "encoder_features"):
            raise ValueError(f"{type(extractor).__name__} has no encoder_features(); the perceptual and "
                             "style terms need a UNetSegmenter (python -m compress.train_segmenter)")
        self.extractor = extractor.eval()
        for parameter in self.extractor.parameters():
            parameter.requires_grad_(False)

    def train(self, mode: bool = True) -> "FeatureTerms":
        return super().train(False)  # always frozen: fixed batch-norm statistics

    def features(self, images: torch.Tensor) -> List[torch.Tensor]:
        return self.extractor.encoder_features(images)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            targets = self.features(teacher)
        perceptual = student.new_zeros(())
        style = student.new_zeros(())
        for mine, target in zip(self.features(student), targets):
            perceptual = perceptual + F.l1_loss(mine, target)
            style = style + F.l1_loss(gram(mine), gram(target))
        return perceptual, style
