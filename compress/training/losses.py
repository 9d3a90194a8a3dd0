"""Training losses shared by teacher training and every GAN Compression stage.

- `GANLoss`: the adversarial objective in the three flavours of the official scripts: "lsgan"
  (least squares; CycleGAN), "hinge" (GauGAN; GAN Compression's pix2pix) and "vanilla"
  (binary cross-entropy on logits). It accepts a single logit map (PatchGAN) or the per-scale
  feature lists of `MultiscaleDiscriminator` (the last entry of each list is the logit map).
- `feature_matching_loss`: GauGAN's L1 between discriminator features of fake and real images.
- `VGGPerceptualLoss`: GauGAN's VGG19 loss. VGG19 weights cannot be downloaded here, so it is
  built from a local file the user supplies (torchvision's ``vgg19-*.pth`` or a safetensors
  copy), read without unpickling code.
- `ssim`: structural similarity with a Gaussian window, for OMGD-style output distillation
  (``1 - SSIM(student, teacher)`` as a loss term of the compression stages).
- `gaussian_blur` / `band_pass`: a separable Gaussian low-pass and a difference of Gaussians,
  for the stages' band term (L1 between the mid-scale detail of student and teacher outputs).
- `ImagePool`: CycleGAN's history buffer of generated images shown to the discriminator; its
  contents are part of the resumable training state (`state_dict` / `load_state_dict`).
"""
import os
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("lsgan", "hinge", "vanilla")

# One PatchGAN logit map, or one list of features per scale (multi-scale discriminator).
DiscriminatorOutput = Union[torch.Tensor, Sequence[Sequence[torch.Tensor]]]


class GANLoss(nn.Module):
    """``loss(prediction, target_is_real, for_discriminator=True)``.

    For the discriminator every mode compares the logits with the real/fake target. For the
    generator (``for_discriminator=False``, ``target_is_real=True``) hinge uses ``-mean(D(G(x)))``
    as upstream GauGAN does; lsgan and vanilla use the same loss as the discriminator with target
    "real". Multi-scale predictions are averaged over the scales.
    """

    def __init__(self, mode: str):
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {', '.join(GAN_MODES)}, got {mode!r}")
        self.mode = mode

    def _single(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        if self.mode == "lsgan":
            return F.mse_loss(logits, torch.full_like(logits, 1.0 if target_is_real else 0.0))
        if self.mode == "vanilla":
            target = torch.full_like(logits, 1.0 if target_is_real else 0.0)
            return F.binary_cross_entropy_with_logits(logits, target)
        if not for_discriminator:  # hinge, generator side
            if not target_is_real:
                raise ValueError("the hinge generator loss is only defined for target_is_real=True")
            return -logits.mean()
        if target_is_real:
            return F.relu(1.0 - logits).mean()  # = -mean(min(logits - 1, 0))
        return F.relu(1.0 + logits).mean()

    def forward(self, prediction: DiscriminatorOutput, target_is_real: bool,
                for_discriminator: bool = True) -> torch.Tensor:
        if isinstance(prediction, torch.Tensor):
            return self._single(prediction, target_is_real, for_discriminator)
        losses = [self._single(scale[-1] if isinstance(scale, (list, tuple)) else scale,
                               target_is_real, for_discriminator) for scale in prediction]
        return torch.stack(losses).mean()


def feature_matching_loss(fake: Sequence[Sequence[torch.Tensor]],
                          real: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """L1 between the intermediate discriminator features (every entry but the final logits) of
    fake and real inputs, summed over layers and averaged over scales (upstream's
    ``GAN_Feat_loss`` before its lambda). Real features are treated as constants."""
    if len(fake) != len(real) or not fake:
        raise ValueError("fake and real features must come from the same multi-scale discriminator")
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        for fake_feature, real_feature in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(fake_feature, real_feature.detach())
    return total / len(fake)


# ----------------------------------------------------------------------------- VGG19 perceptual

# torchvision's vgg19().features layout: numbers are conv widths, "M" max-pooling.
_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# Slices of `features` ending at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1, and their weights
# in upstream GauGAN's VGGLoss.
_VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
_VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def vgg19_features() -> nn.Sequential:
    """The convolutional part of VGG19 with torchvision's module indices (``N.weight``)."""
    layers: List[nn.Module] = []
    channels = 3
    for item in _VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


def _read_vgg_weights(path: str) -> Dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise ValueError(f"{path}: VGG19 weights file not found; give the path of torchvision's "
                         "vgg19-dcbedf5f.pth (or a .safetensors copy), or set lambda_vgg = 0")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for bad/unsafe files
            raise ValueError(f"{path}: cannot read VGG19 weights as a plain state_dict ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict of tensors")
    # accept torchvision's full-model keys ("features.0.weight") or features-only keys ("0.weight")
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    features = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in features.items() if k[:1].isdigit()}


class VGGPerceptualLoss(nn.Module):
    """Weighted L1 between VGG19 activations (relu1_1 ... relu5_1) of fake and real images.

    Images go in as the generator produces them, in [-1, 1], without ImageNet normalisation,
    exactly as upstream GauGAN does. The network is frozen and kept in eval mode.
    """

    def __init__(self, weights_path: str):
        super().__init__()
        features = vgg19_features()
        state = _read_vgg_weights(weights_path)
        try:
            features.load_state_dict(state, strict=True)
        except RuntimeError as error:  # missing/unexpected keys or shape mismatches
            reason = str(error).splitlines()[-1].strip()
            raise ValueError(f"{weights_path}: not VGG19 weights ({reason})") from None
        self.slices = nn.ModuleList(features[a:b] for a, b in _VGG_SLICES)
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        return super().train(False)  # always frozen

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        loss = fake.new_zeros(())
        x, y = fake, real
        for weight, block in zip(_VGG_WEIGHTS, self.slices):
            x, y = block(x), block(y)
            loss = loss + weight * F.l1_loss(x, y.detach())
        return loss


# ----------------------------------------------------------------------------- SSIM and Gaussian filters

def _gaussian_1d(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``size`` taps, centred, in ``like``'s dtype and device."""
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2.0
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    g = _gaussian_1d(size, sigma, like)
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5,
         value_range: Tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Mean SSIM of two NCHW image batches (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
    K1 0.01, K2 0.03; valid windows only). Images in ``value_range`` (generator outputs: [-1, 1])
    are mapped to [0, 1] first: SSIM's luminance term assumes non-negative intensities and is
    unstable around a zero mean. Differentiable in both arguments; 1.0 for identical images."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two NCHW batches of one shape, got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    low, high = value_range
    x, y = (x - low) / (high - low), (y - low) / (high - low)
    channels = x.size(1)
    kernel = _gaussian_window(min(window, x.size(2), x.size(3)), sigma, channels, x)
    c1, c2 = 0.01 ** 2, 0.03 ** 2  # K1, K2 for a data range of 1

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return score.mean()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass of an NCHW batch (kernel +-3 sigma, reflect-padded, so the
    output keeps the input's size)."""
    radius = max(1, int(round(3 * sigma)))
    if min(x.size(2), x.size(3)) <= radius:
        raise ValueError(f"gaussian_blur: sigma {sigma} needs images larger than {radius} pixels, "
                         f"got {tuple(x.shape[2:])}")
    g, channels = _gaussian_1d(2 * radius + 1, sigma, x), x.size(1)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def band_pass(x: torch.Tensor, fine_sigma: float, coarse_sigma: float) -> torch.Tensor:
    """Difference of Gaussians: the detail of ``x`` between the scales ``fine_sigma`` and
    ``coarse_sigma`` (pixels); 0 for a constant image."""
    if not 0 < fine_sigma < coarse_sigma:
        raise ValueError(f"band_pass needs 0 < fine_sigma < coarse_sigma, got {fine_sigma}, {coarse_sigma}")
    return gaussian_blur(x, fine_sigma) - gaussian_blur(x, coarse_sigma)


# ----------------------------------------------------------------------------- image pool

class ImagePool:
    """CycleGAN's buffer of previously generated images (Shrivastava et al.): while it fills up,
    images pass through and are stored; afterwards each image is, with probability 1/2, swapped
    for a random stored one (which it replaces). ``size`` 0 disables the pool. Uses Python's
    ``random`` module, whose state the trainer checkpoints."""

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: List[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        stored = torch.cat(self.images, 0).cpu() if self.images else torch.zeros(0)
        return {"images": stored}

    def load_state_dict(self, state: Dict[str, torch.Tensor], device: Optional[torch.device] = None) -> None:
        images = state["images"]
        self.images = [] if images.numel() == 0 else [img.unsqueeze(0).to(device or img.device)
                                                      for img in images]
