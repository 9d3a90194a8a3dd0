"""Discriminators used to train the generators: PatchGAN and SPADE's multi-scale PatchGAN.

- `NLayerDiscriminator`: the pix2pix / CycleGAN PatchGAN (``model.N`` keys).
- `MultiscaleDiscriminator`: GauGAN's ``num_D`` PatchGANs (`SPADENLayerDiscriminator`, keys
  ``discriminator_<i>.model<n>``) run on successively 2x average-pooled inputs; it returns every
  intermediate feature map for the feature-matching loss.

Key names follow the official implementation so released ``*_net_D.pth`` files load strictly.
"""
from typing import Callable, List

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "none")


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


class NLayerDiscriminator(nn.Module):
    """PatchGAN: 4x4 convs, stride 2 for the first ``n_layers``, then two stride-1 convs; each
    output pixel judges a 70x70 patch (n_layers=3).

    ``norm``: "instance" (GAN Compression's ``--norm instance``; parameter-free, convs keep their
    bias), "batch" (affine BN, convs without bias) or "none" (no norm; like upstream, the inner
    convs then have no bias either).
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        _check_norm(norm)
        use_bias = norm == "instance"  # BN has its own shift; upstream also drops it for "none"

        def norm_layer(channels: int) -> nn.Module:
            if norm == "instance":
                return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
            if norm == "batch":
                return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
            return nn.Identity()

        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        # n_layers - 1 stride-2 convs, then one stride-1 conv at width ndf * min(2**n_layers, 8)
        for n in list(range(1, n_layers)) + [n_layers]:
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=use_bias),
                       norm_layer(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))  # 1-channel patch logits
        self.input_nc = input_nc
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Every LeakyReLU's output, then the patch logits (the last entry; ``forward`` returns
        the same tensor): one pass serves both the GAN loss and a feature-matching term."""
        outputs: List[torch.Tensor] = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                outputs.append(x)
        outputs.append(x)
        return outputs


def _spade_norm_wrapper(norm_d: str) -> Callable[[nn.Conv2d], nn.Module]:
    """Upstream's ``get_nonspade_norm_layer``: "spectral" prefix -> spectral-normalised conv;
    then "instance"/"batch" append a norm (and drop the conv bias, which the norm cancels),
    "none"/"" return the conv itself."""
    spectral = norm_d.startswith("spectral")
    sub_norm = norm_d[len("spectral"):] if spectral else norm_d
    if sub_norm not in NORMS + ("",):
        raise ValueError(f"norm_D must be [spectral]instance|batch|none, got {norm_d!r}")

    def wrap(conv: nn.Conv2d) -> nn.Module:
        if spectral:
            conv = nn.utils.spectral_norm(conv)  # keys weight_orig / weight_u / weight_v
        if sub_norm in ("none", ""):
            return conv
        del conv.bias
        conv.register_parameter("bias", None)
        if sub_norm == "instance":
            return nn.Sequential(conv, nn.InstanceNorm2d(conv.out_channels, affine=False))
        return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels, affine=True))

    return wrap


class SPADENLayerDiscriminator(nn.Module):
    """One scale of GauGAN's discriminator: ``model0`` .. ``model<n_layers>`` (4x4 convs,
    padding 2, width doubling up to 512, stride 1 for the last hidden conv). ``forward`` returns
    the output of every group; the last one is the patch logit map."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 4, norm_d: str = "spectralinstance"):
        super().__init__()
        wrap = _spade_norm_wrapper(norm_d)
        kernel, pad = 4, 2  # pad = ceil((4 - 1) / 2), as upstream
        groups = [[nn.Conv2d(input_nc, ndf, kernel, stride=2, padding=pad), nn.LeakyReLU(0.2, False)]]
        width = ndf
        for n in range(1, n_layers):
            prev, width = width, min(width * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            groups.append([wrap(nn.Conv2d(prev, width, kernel, stride=stride, padding=pad)),
                           nn.LeakyReLU(0.2, False)])
        groups.append([nn.Conv2d(width, 1, kernel, stride=1, padding=pad)])
        # separate named groups so intermediate features can be returned for feature matching
        for n, group in enumerate(groups):
            self.add_module(f"model{n}", nn.Sequential(*group))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        features = []
        for group in self.children():
            x = group(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """GauGAN's discriminator: ``num_D`` `SPADENLayerDiscriminator`s on the input downsampled
    by 1, 2, 4, ... (3x3 average pooling, stride 2). ``input_nc`` = semantic_nc + image channels
    (it judges the concatenation of label map and image).

    ``forward`` returns one list of features per scale, each ending with the logit map.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers_D: int = 4, num_D: int = 2,
                 norm_D: str = "spectralinstance"):
        super().__init__()
        self.input_nc = input_nc
        for i in range(num_D):
            self.add_module(f"discriminator_{i}", SPADENLayerDiscriminator(input_nc, ndf, n_layers_D, norm_D))

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        results = []
        for discriminator in self.children():
            results.append(discriminator(x))
            x = self.downsample(x)
        return results
