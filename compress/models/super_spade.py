"""The once-for-all mobile SPADE supernet of GAN Compression.

`SuperMobileSPADEGenerator` holds `MobileSPADEGenerator`'s weights (same keys and shapes) and
runs any sub-network named by an 8-number config by using the *leading* channels of every
weight, which is how the official supernet shares weights. The batch norms keep full-width
statistics and zero-pad narrower activations (`PaddedBatchNorm2d`), so the standalone
`SubMobileSPADEGenerator` built by `make_subnet` has the same keys, every other tensor being a
leading slice of the supernet's: copying those slices reproduces the supernet's output.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.layers import SuperConv2d, SuperSeparableConv2d
from compress.models.search_space import encode_config
from compress.models.spade import (LEAKY_SLOPE, SPADE, BlockWidth, PaddedBatchNorm2d,
                                   SPADEGeneratorBase, SPADEResnetBlockBase, SpadeWidths,
                                   SubMobileSPADEGenerator, config_channels, full_block_shapes,
                                   resize_like)


class SuperMobileSPADE(SPADE):
    """`MobileSPADE` at full width; ``forward(x, seg, hidden)`` uses ``hidden`` channels of
    ``mlp_shared`` and modulates however many channels ``x`` has."""

    shared_conv = SuperConv2d
    modulation_conv = SuperSeparableConv2d

    @staticmethod
    def make_norm(norm_nc: int, stats_nc: Optional[int]) -> nn.BatchNorm2d:
        return PaddedBatchNorm2d(norm_nc, affine=False)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor,  # type: ignore[override]
                hidden: Optional[int] = None) -> torch.Tensor:
        conv, relu = self.mlp_shared
        actv = relu(conv(resize_like(segmap, x), hidden))
        gamma = self.mlp_gamma(actv, x.size(1))
        beta = self.mlp_beta(actv, x.size(1))
        return self.param_free_norm(x) * (1 + gamma) + beta


class SuperMobileSPADEResnetBlock(SPADEResnetBlockBase):
    """`MobileSPADEResnetBlock` at full width; ``forward(x, seg, width)`` runs ``width.channel``
    conv_0 outputs (and block outputs when the shortcut is learned) and ``width.hidden`` SPADE
    hidden channels on an input of any width."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden_nc: int):
        super().__init__()
        middle = min(fin, fout)
        self._build(fin, middle, fout, fin != fout, (fin, middle),
                    lambda nc, stats: SuperMobileSPADE(nc, label_nc, hidden_nc), conv=SuperConv2d)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor,  # type: ignore[override]
                width: Optional[BlockWidth] = None) -> torch.Tensor:
        if width is None:
            return super().forward(x, segmap)
        channel, hidden = width.channel, width.hidden
        if self.learned_shortcut:
            x_s = self.conv_s(self.norm_s(x, segmap, hidden), channel)
        else:
            x_s = x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap, hidden), LEAKY_SLOPE), channel)
        # width-keeping blocks restore the trunk width; the others output `channel`
        out_nc = channel if self.learned_shortcut else x.size(1)
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap, hidden), LEAKY_SLOPE), out_nc)
        return x_s + dx


class SuperMobileSPADEGenerator(SPADEGeneratorBase):
    """Once-for-all mobile SPADE generator at width ``ngf``.

    Choose the sub-network with ``set_config("32_32_32_48_32_24_24_32")`` or pass ``config=`` to
    ``forward``; by default it runs at full width. Before evaluating a sub-network, re-calibrate
    the batch-norm statistics on training images under that config (as upstream does).
    """

    def __init__(self, semantic_nc: int, output_nc: int = 3, ngf: int = 64, crop_size: int = 256,
                 aspect_ratio: float = 1.0, num_upsampling_layers: str = "normal", config=None):
        if num_upsampling_layers == "most":
            raise ValueError('the mobile SPADE supernet supports num_upsampling_layers "normal" '
                             'or "more" (the 8-number config has no width for up_4)')
        super().__init__(semantic_nc, output_nc, crop_size, aspect_ratio, num_upsampling_layers)
        self.ngf = ngf
        self.fc = SuperConv2d(semantic_nc, 16 * ngf, 3, padding=1)
        for name, (fin, fout) in full_block_shapes(ngf, num_upsampling_layers).items():
            setattr(self, name, SuperMobileSPADEResnetBlock(fin, fout, semantic_nc, 2 * ngf))
        self.conv_img = SuperConv2d(ngf, output_nc, 3, padding=1)
        self.set_config((ngf,) * 8 if config is None else config)

    def widths_for(self, config) -> SpadeWidths:
        """Decode ``config``; ValueError if malformed or wider than this supernet."""
        return SpadeWidths.from_config(config_channels(config, self.ngf, "supernet config"))

    def set_config(self, config) -> None:
        """Choose the sub-network that later forwards run."""
        channels = config_channels(config, self.ngf, "supernet config")
        self.widths = SpadeWidths.from_config(channels)
        self.config = encode_config(channels)

    def forward(self, segmap: torch.Tensor, config=None) -> torch.Tensor:  # type: ignore[override]
        w = self.widths if config is None else self.widths_for(config)

        def run_block(name: str, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
            return getattr(self, name)(x, seg, w.blocks[name])

        return self._generate(segmap, lambda x: self.fc(x, w.trunk), run_block, self.conv_img)

    def make_subnet(self, config=None) -> SubMobileSPADEGenerator:
        """A randomly initialised standalone sub-network for ``config`` (default: the active
        one) with this supernet's constructor arguments; copy weights into it with
        ``compress.models.extract``."""
        return SubMobileSPADEGenerator(
            self.semantic_nc, self.output_nc, ngf=self.ngf,
            config=self.config if config is None else config, crop_size=self.crop_size,
            aspect_ratio=self.aspect_ratio, num_upsampling_layers=self.num_upsampling_layers)
