"""The ResNet generator family of pix2pix / CycleGAN and its GAN Compression students.

All five generators share one 28-module layout (for 9 blocks) so that state_dict keys match the
official checkpoints: ``model.0`` ReflectionPad(3), ``model.1`` 7x7 stem conv, ``model.4`` and
``model.7`` stride-2 down convs, ``model.10..18`` residual blocks, ``model.19`` / ``model.22``
transposed convs, ``model.25`` ReflectionPad(3), ``model.26`` 7x7 output conv, ``model.27`` Tanh
(norms and ReLUs in between). Every norm is parameter-free InstanceNorm, every conv has a bias.

- `ResnetGenerator`: the full teacher (dense 3x3 convs in the blocks).
- `MobileResnetGenerator`: same skeleton, separable convs in the blocks.
- `SuperMobileResnetGenerator`: the once-for-all supernet; the active config picks leading
  channels of shared weights on every forward.
- `SubMobileResnetGenerator` / `LegacySubMobileResnetGenerator`: standalone sub-networks named by
  an 8-number (or legacy 6-number) config string.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from compress.models.layers import (SeparableConv2d, SuperConv2d, SuperConvTranspose2d,
                                    SuperSeparableConv2d, instance_norm, super_instance_norm)
from compress.models.search_space import encode_config, parse_config


def block_group(index: int, n_blocks: int) -> int:
    """Which third of the blocks (0, 1, 2) block ``index`` belongs to; sizes n//3, n//3, rest
    (3/3/3 for the official 9 blocks, whose configs give one inner width per third)."""
    third = n_blocks // 3
    return min(index // third, 2) if third else 2


@dataclass(frozen=True)
class ResnetWidths:
    """Actual output widths of the layers of a ResNet-family generator."""

    stem: int               # model.1
    down1: int              # model.4
    trunk: int              # model.7, and the residual trunk of every block
    inner: Tuple[int, ...]  # per block: output width of its first (separable) conv
    up1: int                # model.19
    up2: int                # model.22

    @classmethod
    def uniform(cls, ngf: int, n_blocks: int) -> "ResnetWidths":
        return cls(ngf, 2 * ngf, 4 * ngf, (4 * ngf,) * n_blocks, 2 * ngf, ngf)

    @classmethod
    def from_config(cls, channels: Sequence[int], n_blocks: int, legacy: bool = False) -> "ResnetWidths":
        """Decode the official encoding: ``[c0..c7]`` -> stem c0, down 2*c1, trunk 4*c2, inner
        4*c3/4*c4/4*c5 per third of the blocks, up 2*c6 and c7. Six numbers ``[c0..c5]`` use
        c3 for every block and c4/c5 for the ups; ``legacy`` (the paper's released models)
        applies the inner width only to the first block of each third, the trunk to the rest."""
        c = list(channels)
        trunk = 4 * c[2]
        inner = []
        for i in range(n_blocks):
            group = 0 if len(c) == 6 else block_group(i, n_blocks)
            first_of_group = block_group(i - 1, n_blocks) != block_group(i, n_blocks) if i else True
            if legacy and not first_of_group:
                inner.append(trunk)
            else:
                inner.append(4 * c[3 + group])
        up = c[4:6] if len(c) == 6 else c[6:8]
        return cls(c[0], 2 * c[1], trunk, tuple(inner), 2 * up[0], up[1])

    def fits_in(self, other: "ResnetWidths") -> bool:
        mine = (self.stem, self.down1, self.trunk, self.up1, self.up2) + self.inner
        theirs = (other.stem, other.down1, other.trunk, other.up1, other.up2) + other.inner
        return len(mine) == len(theirs) and all(a <= b for a, b in zip(mine, theirs))


class ResnetBlock(nn.Module):
    """Dense residual block: pad-conv3x3-IN-ReLU-dropout-pad-conv3x3-IN, plus the input."""

    def __init__(self, dim: int, dropout_rate: float = 0.0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), instance_norm(dim), nn.ReLU(True),
            nn.Dropout(dropout_rate),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), instance_norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class MobileResnetBlock(nn.Module):
    """Residual block with separable convs; the first conv widens/narrows the trunk ``dim`` to
    ``inner_dim`` and the second restores ``dim`` (keys ``conv_block.1`` and ``conv_block.6``)."""

    separable = SeparableConv2d
    norm = staticmethod(instance_norm)

    def __init__(self, dim: int, inner_dim: int, dropout_rate: float = 0.0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), self.separable(dim, inner_dim, 3), self.norm(inner_dim),
            nn.ReLU(True), nn.Dropout(dropout_rate),
            nn.ReflectionPad2d(1), self.separable(inner_dim, dim, 3), self.norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class SuperMobileResnetBlock(MobileResnetBlock):
    """`MobileResnetBlock` at maximum width; ``forward(x, inner_dim)`` runs the leading channels."""

    separable = SuperSeparableConv2d
    norm = staticmethod(super_instance_norm)

    def forward(self, x: torch.Tensor, inner_dim: Optional[int] = None) -> torch.Tensor:  # type: ignore[override]
        pad1, conv1, norm1, relu, dropout, pad2, conv2, norm2 = self.conv_block
        y = dropout(relu(norm1(conv1(pad1(x), inner_dim))))
        y = norm2(conv2(pad2(y), x.size(1)))
        return x + y


def _resnet_layers(input_nc: int, output_nc: int, widths: ResnetWidths, make_block,
                   conv=nn.Conv2d, conv_transpose=nn.ConvTranspose2d, norm=instance_norm) -> nn.Sequential:
    """The official module sequence; ``make_block(index, trunk, inner)`` builds each block."""
    w = widths
    layers = [nn.ReflectionPad2d(3), conv(input_nc, w.stem, 7), norm(w.stem), nn.ReLU(True),
              conv(w.stem, w.down1, 3, stride=2, padding=1), norm(w.down1), nn.ReLU(True),
              conv(w.down1, w.trunk, 3, stride=2, padding=1), norm(w.trunk), nn.ReLU(True)]
    layers += [make_block(i, w.trunk, inner) for i, inner in enumerate(w.inner)]
    layers += [conv_transpose(w.trunk, w.up1, 3, stride=2, padding=1, output_padding=1),
               norm(w.up1), nn.ReLU(True),
               conv_transpose(w.up1, w.up2, 3, stride=2, padding=1, output_padding=1),
               norm(w.up2), nn.ReLU(True),
               nn.ReflectionPad2d(3), conv(w.up2, output_nc, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class _ResnetFamily(nn.Module):
    """Common forward: clamp the input to [-1, 1] (as upstream does), run the sequence."""

    family = "resnet"

    def __init__(self, input_nc: int, output_nc: int, widths: ResnetWidths):
        super().__init__()
        self.input_nc, self.output_nc, self.widths = input_nc, output_nc, widths

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.clamp(-1, 1))


class ResnetGenerator(_ResnetFamily):
    """pix2pix / CycleGAN teacher (11,378,179 params at ngf 64, 9 blocks)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 dropout_rate: float = 0.0):
        super().__init__(input_nc, output_nc, ResnetWidths.uniform(ngf, n_blocks))
        self.ngf = ngf
        self.model = _resnet_layers(input_nc, output_nc, self.widths,
                                    lambda i, trunk, inner: ResnetBlock(trunk, dropout_rate))


class MobileResnetGenerator(_ResnetFamily):
    """The MobileNet-style teacher of the original GAN Compression flow."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 dropout_rate: float = 0.0):
        super().__init__(input_nc, output_nc, ResnetWidths.uniform(ngf, n_blocks))
        self.ngf = ngf
        self.model = _resnet_layers(input_nc, output_nc, self.widths,
                                    lambda i, trunk, inner: MobileResnetBlock(trunk, inner, dropout_rate))


class SubMobileResnetGenerator(_ResnetFamily):
    """A standalone sub-network, e.g. config ``"16_16_32_16_32_32_16_16"`` (8 numbers; 6-number
    strings are accepted with one inner width for all blocks)."""

    legacy = False

    def __init__(self, input_nc: int = 3, output_nc: int = 3, config="16_16_32_16_32_32_16_16",
                 n_blocks: int = 9, dropout_rate: float = 0.0):
        lengths = (6,) if self.legacy else (8, 6)
        channels = parse_config(config, lengths, what=f"{type(self).__name__} config")
        super().__init__(input_nc, output_nc,
                         ResnetWidths.from_config(channels, n_blocks, legacy=self.legacy))
        self.config = encode_config(channels)
        self.model = _resnet_layers(input_nc, output_nc, self.widths,
                                    lambda i, trunk, inner: MobileResnetBlock(trunk, inner, dropout_rate))


class LegacySubMobileResnetGenerator(SubMobileResnetGenerator):
    """The paper's released sub-networks (6-number configs such as ``24_24_24_32_20_16``)."""

    legacy = True

    def __init__(self, input_nc: int = 3, output_nc: int = 3, config="24_24_24_32_20_16",
                 n_blocks: int = 9, dropout_rate: float = 0.0):
        super().__init__(input_nc, output_nc, config, n_blocks, dropout_rate)


class SuperMobileResnetGenerator(_ResnetFamily):
    """Once-for-all supernet at width ``ngf``. Set the active sub-network with
    ``set_config("24_24_40_56_24_56_16_40")`` or pass ``config=`` to ``forward``; by default it
    runs at full width. Keys equal `MobileResnetGenerator`'s at the same ngf."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 dropout_rate: float = 0.0, config=None):
        super().__init__(input_nc, output_nc, ResnetWidths.uniform(ngf, n_blocks))
        self.ngf, self.n_blocks, self.dropout_rate = ngf, n_blocks, dropout_rate
        self.max_widths = self.widths
        self.model = _resnet_layers(
            input_nc, output_nc, self.widths,
            lambda i, trunk, inner: SuperMobileResnetBlock(trunk, inner, dropout_rate),
            conv=SuperConv2d, conv_transpose=SuperConvTranspose2d, norm=super_instance_norm)
        self.config = encode_config((ngf,) * 8)
        if config is not None:
            self.set_config(config)

    def widths_for(self, config) -> ResnetWidths:
        channels = parse_config(config, (8, 6), what="supernet config")
        widths = ResnetWidths.from_config(channels, self.n_blocks)
        if not widths.fits_in(self.max_widths):
            raise ValueError(f"config {encode_config(channels)!r} is wider than this supernet "
                             f"(ngf {self.ngf}): every channel number must be <= {self.ngf}")
        return widths

    def set_config(self, config) -> None:
        """Choose the sub-network that later forwards run."""
        self.widths = self.widths_for(config)
        self.config = encode_config(parse_config(config, (8, 6)))

    def make_subnet(self, config) -> SubMobileResnetGenerator:
        """A randomly initialised standalone sub-network for ``config`` (see `extract_subnet`)."""
        self.widths_for(config)  # validates that it fits
        return SubMobileResnetGenerator(self.input_nc, self.output_nc, config,
                                        n_blocks=self.n_blocks, dropout_rate=self.dropout_rate)

    def forward(self, x: torch.Tensor, config=None) -> torch.Tensor:  # type: ignore[override]
        w = self.widths if config is None else self.widths_for(config)
        m = self.model
        x = m[0](x.clamp(-1, 1))
        x = m[3](m[2](m[1](x, w.stem)))
        x = m[6](m[5](m[4](x, w.down1)))
        x = m[9](m[8](m[7](x, w.trunk)))
        for i, inner in enumerate(w.inner):
            x = m[10 + i](x, inner)
        k = 10 + len(w.inner)
        x = m[k + 2](m[k + 1](m[k](x, w.up1)))
        x = m[k + 5](m[k + 4](m[k + 3](x, w.up2)))
        return m[k + 8](m[k + 7](m[k + 6](x)))
