"""A small U-Net segmenter that scores generated images by mIoU, and its checkpoint format.

The paper measures how faithfully a label -> photo generator follows its input map by
segmenting the generated photo with a pretrained network (DRN-D-105 for Cityscapes) and
computing mIoU against the input labels. Facades and CamVid have no such public segmenter, so
``python -m compress.train_segmenter`` trains this one on a dataset's photos -> labels:

    model, meta = load_segmenter("runs/segmenter/facades/best.safetensors")
    ids = segment(model, generated_uint8)          # (N, H, W) class ids
    score = miou(ids, input_labels, meta["num_classes"], meta["ignore_id"])

The network: a stride-2 3x3 stem (the CPU budget goes to the coarser levels, where context
lives; the logits are upsampled x2 at the end), then a 4-level U-Net (two 3x3 conv-BN-ReLU per
level, max-pool down, bilinear up with skip concatenation). ``width`` 16 -> 0.49M params,
24 -> 1.1M, 32 -> 1.95M; ``stem_stride=1`` keeps full resolution throughout. Checkpoints are
safetensors whose header carries the metadata (palette, num_classes, resolution, ...), so no
pickled code is ever loaded.
"""
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FORMAT = "gan-compression-segmenter/1"


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


class UNetSegmenter(nn.Module):
    """Photo (N, 3, H, W) in [-1, 1] -> class logits (N, num_classes, H, W).
    H and W must be multiples of ``multiple_of`` (``segment`` pads/resizes for you)."""

    def __init__(self, num_classes: int, width: int = 16, depth: int = 4, stem_stride: int = 2,
                 in_channels: int = 3):
        super().__init__()
        if num_classes < 2 or width < 1 or depth < 2 or stem_stride not in (1, 2):
            raise ValueError(f"need num_classes >= 2, width >= 1, depth >= 2, stem_stride 1 or 2; "
                             f"got {num_classes}, {width}, {depth}, {stem_stride}")
        self.num_classes, self.width, self.depth, self.stem_stride = num_classes, width, depth, stem_stride
        self.multiple_of = stem_stride * 2 ** (depth - 1)
        self.resolution: Optional[Tuple[int, int]] = None  # training resolution, set by load_segmenter
        widths = [width * 2 ** i for i in range(depth)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.down = nn.ModuleList([_conv_block(width, widths[0])]
                                  + [_conv_block(widths[i - 1], widths[i]) for i in range(1, depth)])
        self.up = nn.ModuleList([_conv_block(widths[i] + widths[i - 1], widths[i - 1])
                                 for i in range(depth - 1, 0, -1)])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def encoder_features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The output of each down level (fine to coarse): what the network has learnt about
        facade texture and layout, for perceptual / style terms (`compress.distillation.style`)."""
        x = self.stem(x)
        features: List[torch.Tensor] = []
        for level, block in enumerate(self.down):
            x = block(F.max_pool2d(x, 2) if level else x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % self.multiple_of or x.shape[3] % self.multiple_of:
            raise ValueError(f"input {tuple(x.shape[2:])} must be a multiple of {self.multiple_of} "
                             "in height and width; use segment() to pad or resize")
        size = x.shape[2:]
        x = self.stem(x)
        skips: List[torch.Tensor] = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        logits = self.head(x)
        if self.stem_stride != 1:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- inference

@torch.no_grad()
def segment(model: UNetSegmenter, images_uint8: np.ndarray, batch_size: int = 16,
            device: Optional[str] = None) -> np.ndarray:
    """(N, H, W) int64 class ids of uint8 photos (N, H, W, 3) (a single (H, W, 3) image works too).

    Images are resized (bilinear, antialiased) to the segmenter's training resolution when it
    has one, and the logits are resized back to (H, W) before the argmax, like the official
    Cityscapes evaluation; otherwise they are reflect-padded to a multiple of ``multiple_of``.
    """
    images = np.asarray(images_uint8)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"segment() expects uint8 images (N, H, W, 3), got {images.dtype} {images.shape}")
    if device is None:
        device = str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    height, width = images.shape[1:3]
    out = np.empty(images.shape[:3], dtype=np.int64)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(images[start:start + batch_size]).to(device)
        x = batch.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if model.resolution is not None and tuple(model.resolution) != (height, width):
            x = F.interpolate(x, size=tuple(model.resolution), mode="bilinear", align_corners=False,
                              antialias=True)
            logits = F.interpolate(model(x), size=(height, width), mode="bilinear", align_corners=False)
        else:
            m = model.multiple_of
            pad_h, pad_w = (-height) % m, (-width) % m
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > max(pad_h, pad_w)
                          else "replicate")
            logits = model(x)[:, :, :height, :width]
        out[start:start + len(batch)] = logits.argmax(dim=1).cpu().numpy()
    model.train(was_training)
    return out[0] if single else out


# ----------------------------------------------------------------------------- checkpoints

def segmenter_metadata(model: UNetSegmenter, palette: Optional[str], resolution: Tuple[int, int],
                       ignore_id: Optional[int], **extra: Any) -> Dict[str, Any]:
    meta = {"arch": "unet", "width": model.width, "depth": model.depth, "stem_stride": model.stem_stride,
            "num_classes": model.num_classes,
            "palette": palette, "resolution": [int(resolution[0]), int(resolution[1])],
            "ignore_id": ignore_id, "params": count_params(model)}
    meta.update(extra)
    return meta


def save_segmenter(model: UNetSegmenter, path: str, meta: Dict[str, Any], overwrite: bool = False) -> None:
    """Write weights + metadata as one safetensors file, atomically."""
    from safetensors.torch import save_file

    from compress.common.atomic import atomic_write
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "meta": json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header), overwrite=overwrite)


def load_segmenter(path: str, device: str = "cpu") -> Tuple[UNetSegmenter, Dict[str, Any]]:
    """(model in eval mode with ``.resolution`` set, metadata) from a ``save_segmenter`` file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such segmenter checkpoint; "
                         "train one with python -m compress.train_segmenter")
    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: not a segmenter checkpoint (format {header.get('format')!r}, "
                         f"expected {FORMAT!r})")
    meta = json.loads(header["meta"])
    model = UNetSegmenter(meta["num_classes"], width=meta["width"], depth=meta["depth"],
                          stem_stride=meta.get("stem_stride", 1))
    model.load_state_dict(tensors)
    model.resolution = (int(meta["resolution"][0]), int(meta["resolution"][1]))
    return model.to(device).eval(), meta
