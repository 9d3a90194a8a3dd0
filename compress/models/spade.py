"""The GauGAN (SPADE) generator family and its GAN Compression students.

Every generator here maps a one-hot semantic map [N, semantic_nc, H, W] to an image in [-1, 1]:
the map is resized to a small latent grid, a 3x3 ``fc`` conv lifts it to 16*ngf channels, and
seven residual blocks (``head_0``, ``G_middle_0``, ``G_middle_1``, ``up_0..up_3``, plus ``up_4``
for "most") interleaved with nearest x2 upsampling bring it to full resolution; ``conv_img`` and
tanh give the image. Each block re-injects the map through SPADE norms: a parameter-free batch
norm modulated by a per-pixel scale and shift predicted from the map.

- `SPADEGenerator`: the full teacher (dense SPADE convs; optional spectral norm on the residual
  convs so that NVlabs-style checkpoints load).
- `MobileSPADEGenerator`: only ``mlp_gamma`` / ``mlp_beta`` become separable convs.
- `SubMobileSPADEGenerator`: a standalone sub-network of the once-for-all supernet
  (`compress.models.super_spade`), named by an 8-number config string.

Module names and tensor shapes follow the official implementation, so released checkpoints load
with ``strict=True``. The sub-network keeps its batch norms at *supernet* width (as the official
one does): narrower activations are zero-padded to that width and the output is sliced back.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from compress.models.layers import SeparableConv2d
from compress.models.search_space import encode_config, parse_config

# Number of x2 upsamplings between the latent grid and the output, per upstream option.
NUM_UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}

# Residual blocks in forward order; "up_4" exists only with num_upsampling_layers="most".
BLOCK_NAMES = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")

# Width multiplier of each config position [fc, head_0, G_middle_0, G_middle_1, up_0..up_3]:
# the fc / head / middle widths are 16*c, the up blocks 8*c, 4*c, 2*c and c.
CONFIG_MULTIPLIERS = (16, 16, 16, 16, 8, 4, 2, 1)

LEAKY_SLOPE = 0.2


def num_upsamplings(num_upsampling_layers: str) -> int:
    try:
        return NUM_UPSAMPLINGS[num_upsampling_layers]
    except KeyError:
        raise ValueError(f"num_upsampling_layers must be one of {sorted(NUM_UPSAMPLINGS)}, "
                         f"got {num_upsampling_layers!r}") from None


def default_input_size(crop_size: int, aspect_ratio: float, num_upsampling_layers: str) -> Tuple[int, int]:
    """(H, W) the model was configured for; upstream derives its latent grid as
    sw = crop // 2**n, sh = round(sw / aspect), so e.g. Cityscapes (512, 2.0, "more") -> (256, 512)."""
    scale = 2 ** num_upsamplings(num_upsampling_layers)
    sw = crop_size // scale
    sh = int(round(sw / aspect_ratio))
    return sh * scale, sw * scale


def full_block_shapes(ngf: int, num_upsampling_layers: str) -> Dict[str, Tuple[int, int]]:
    """(fin, fout) of every residual block of a full-width generator."""
    shapes = {"head_0": (16 * ngf, 16 * ngf), "G_middle_0": (16 * ngf, 16 * ngf),
              "G_middle_1": (16 * ngf, 16 * ngf), "up_0": (16 * ngf, 8 * ngf),
              "up_1": (8 * ngf, 4 * ngf), "up_2": (4 * ngf, 2 * ngf), "up_3": (2 * ngf, ngf)}
    if num_upsampling_layers == "most":
        shapes["up_4"] = (ngf, ngf // 2)
    return shapes


@dataclass(frozen=True)
class BlockWidth:
    """Actual widths of one residual block of a (sub-)network."""

    in_nc: int    # width of the block input (the trunk for head/middles/up_0)
    channel: int  # conv_0 output; also the block output when it has a learned shortcut
    hidden: int   # SPADE hidden width (mlp_shared output)


@dataclass(frozen=True)
class SpadeWidths:
    """Actual widths of a mobile SPADE (sub-)network, decoded from an 8-number config."""

    trunk: int                     # fc output, and the residual width of head_0 / G_middle_*
    blocks: Dict[str, BlockWidth]  # keyed by BLOCK_NAMES
    final: int                     # conv_img input (= up_3 output)

    @classmethod
    def from_config(cls, channels: Sequence[int]) -> "SpadeWidths":
        c = list(channels)
        trunk = CONFIG_MULTIPLIERS[0] * c[0]
        blocks = {}
        in_nc = trunk
        for i, name in enumerate(BLOCK_NAMES, start=1):
            channel = CONFIG_MULTIPLIERS[i] * c[i]
            blocks[name] = BlockWidth(in_nc, channel, 2 * c[i])
            if name.startswith("up_"):  # up blocks change the trunk width; the others restore it
                in_nc = channel
        return cls(trunk, blocks, in_nc)


def config_channels(config, ngf: int, what: str) -> Tuple[int, ...]:
    """Parse an 8-number SPADE config and check it fits a supernet of width ``ngf``."""
    channels = parse_config(config, (8,), what=what)
    if any(ch > ngf for ch in channels):
        raise ValueError(f"{what} {encode_config(channels)!r} is wider than the supernet "
                         f"(ngf {ngf}): every channel number must be <= {ngf}")
    return channels


class PaddedBatchNorm2d(nn.BatchNorm2d):
    """A parameter-free BatchNorm2d that also accepts *narrower* inputs: they are zero-padded to
    ``num_features``, normalised, and sliced back (the official ``SuperSynchronizedBatchNorm2d``).

    This keeps the running statistics at supernet width so that one set of buffers serves every
    sub-network and official sub-network checkpoints (whose buffers are supernet-wide) load. In
    eval mode it equals a BatchNorm over the leading statistics; in training mode the padded
    channels' statistics decay toward zero, exactly as upstream (they are re-calibrated anyway).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.size(1)
        if width > self.num_features:
            raise ValueError(f"batch norm got {width} channels but holds statistics for "
                             f"{self.num_features}; use a config inside the supernet")
        if width < self.num_features:
            # (W, H, C) pad pairs: zeros after the last channel; a plain constant Pad op
            padded = F.pad(x, (0, 0, 0, 0, 0, self.num_features - width))
            return super().forward(padded)[:, :width]
        return super().forward(x)


def param_free_batch_norm(num_features: int, stats_nc: Optional[int] = None) -> nn.BatchNorm2d:
    """BatchNorm without affine parameters (upstream: SyncBatchNorm, same buffers; convert with
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` for multi-GPU training). ``stats_nc`` wider than
    ``num_features`` keeps supernet-wide statistics (see `PaddedBatchNorm2d`)."""
    if stats_nc is None or stats_nc == num_features:
        return nn.BatchNorm2d(num_features, affine=False)
    return PaddedBatchNorm2d(stats_nc, affine=False)


def resize_like(segmap: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(segmap, size=x.shape[2:], mode="nearest")


class SPADE(nn.Module):
    """Dense SPADE: ``BN(x) * (1 + gamma(seg)) + beta(seg)`` with 3x3 convs (keys
    ``param_free_norm``, ``mlp_shared.0``, ``mlp_gamma``, ``mlp_beta``).

    ``stats_nc`` (sub-networks only) keeps the batch-norm statistics wider than ``norm_nc``.
    Subclasses swap the conv types through the class attributes below.
    """

    shared_conv = nn.Conv2d      # label map -> hidden
    modulation_conv = nn.Conv2d  # hidden -> gamma / beta

    def __init__(self, norm_nc: int, label_nc: int, hidden_nc: int, kernel_size: int = 3,
                 stats_nc: Optional[int] = None):
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = self.make_norm(norm_nc, stats_nc)
        self.mlp_shared = nn.Sequential(self.shared_conv(label_nc, hidden_nc, kernel_size, padding=pad),
                                        nn.ReLU())
        self.mlp_gamma = self.modulation_conv(hidden_nc, norm_nc, kernel_size, padding=pad)
        self.mlp_beta = self.modulation_conv(hidden_nc, norm_nc, kernel_size, padding=pad)

    @staticmethod
    def make_norm(norm_nc: int, stats_nc: Optional[int]) -> nn.BatchNorm2d:
        return param_free_batch_norm(norm_nc, stats_nc)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        actv = self.mlp_shared(resize_like(segmap, x))
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class MobileSPADE(SPADE):
    """SPADE whose gamma/beta convs are separable (dw3x3 -> IN -> pw1x1, keys ``conv.0`` /
    ``conv.2``); ``mlp_shared`` stays dense."""

    modulation_conv = SeparableConv2d


# make_norm(modulated_nc, stats_nc) -> SPADE-like module
NormFactory = Callable[[int, int], nn.Module]


class SPADEResnetBlockBase(nn.Module):
    """Residual block ``shortcut(x) + conv_1(act(norm_1(conv_0(act(norm_0(x))))))``.

    The shortcut is ``conv_s(norm_s(x))`` (1x1, no bias) when the *full-width* block changes
    width (fin != fout), else identity. Modules are registered in upstream's order (conv_0,
    conv_1, conv_s, norm_0, norm_1, norm_s) so state_dicts list keys the same way.
    """

    def _build(self, in_nc: int, middle_nc: int, out_nc: int, learned_shortcut: bool,
               stats: Tuple[int, int], make_norm: NormFactory, conv=nn.Conv2d,
               spectral_norm: bool = False) -> None:
        self.learned_shortcut = learned_shortcut
        self.conv_0 = conv(in_nc, middle_nc, kernel_size=3, padding=1)
        self.conv_1 = conv(middle_nc, out_nc, kernel_size=3, padding=1)
        if learned_shortcut:
            self.conv_s = conv(in_nc, out_nc, kernel_size=1, bias=False)
        if spectral_norm:  # old-style hook: keys weight_orig / weight_u / weight_v like NVlabs
            for name in ("conv_0", "conv_1", "conv_s"):
                if hasattr(self, name):
                    setattr(self, name, nn.utils.spectral_norm(getattr(self, name)))
        fin_stats, middle_stats = stats
        self.norm_0 = make_norm(in_nc, fin_stats)
        self.norm_1 = make_norm(middle_nc, middle_stats)
        if learned_shortcut:
            self.norm_s = make_norm(in_nc, fin_stats)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), LEAKY_SLOPE))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), LEAKY_SLOPE))
        return x_s + dx

    def remove_spectral_norm(self) -> None:
        for name in ("conv_0", "conv_1", "conv_s"):
            module = getattr(self, name, None)
            if module is not None and hasattr(module, "weight_orig"):
                nn.utils.remove_spectral_norm(module)


class SPADEResnetBlock(SPADEResnetBlockBase):
    """Teacher block: dense SPADE norms, inner width min(fin, fout)."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden_nc: int, spectral_norm: bool = False):
        super().__init__()
        middle = min(fin, fout)
        self._build(fin, middle, fout, fin != fout, (fin, middle),
                    lambda nc, stats: SPADE(nc, label_nc, hidden_nc), spectral_norm=spectral_norm)


class MobileSPADEResnetBlock(SPADEResnetBlockBase):
    """Mobile teacher / supernet-shaped block: separable gamma/beta convs."""

    def __init__(self, fin: int, fout: int, label_nc: int, hidden_nc: int, spectral_norm: bool = False):
        super().__init__()
        middle = min(fin, fout)
        self._build(fin, middle, fout, fin != fout, (fin, middle),
                    lambda nc, stats: MobileSPADE(nc, label_nc, hidden_nc), spectral_norm=spectral_norm)


class SubMobileSPADEResnetBlock(SPADEResnetBlockBase):
    """A sub-network block. ``fin``/``fout`` are the supernet block's widths (they decide the
    shortcut and the batch-norm statistics width); ``width`` gives the actual widths. Blocks
    that keep their width run ``in -> channel -> in``; the others ``in -> channel -> channel``."""

    def __init__(self, fin: int, fout: int, width: BlockWidth, label_nc: int):
        super().__init__()
        learned = fin != fout
        out_nc = width.channel if learned else width.in_nc
        self._build(width.in_nc, width.channel, out_nc, learned, (fin, min(fin, fout)),
                    lambda nc, stats: MobileSPADE(nc, label_nc, width.hidden, stats_nc=stats))


class SPADEGeneratorBase(nn.Module):
    """Shared skeleton: latent grid from the input size, block order, upsampling, output head."""

    family = "spade"

    def __init__(self, semantic_nc: int, output_nc: int, crop_size: int, aspect_ratio: float,
                 num_upsampling_layers: str):
        super().__init__()
        self.num_upsamplings = num_upsamplings(num_upsampling_layers)
        self.input_nc = self.semantic_nc = semantic_nc
        self.output_nc = output_nc
        self.crop_size, self.aspect_ratio = crop_size, aspect_ratio
        self.num_upsampling_layers = num_upsampling_layers
        # (H, W) of the configured crop; the forward pass accepts any multiple of 2**n_up.
        self.input_size = default_input_size(crop_size, aspect_ratio, num_upsampling_layers)

    def latent_size(self, height: int, width: int) -> Tuple[int, int]:
        """Latent grid (sh, sw) for an input of ``height`` x ``width`` pixels. Upstream fixes it
        from crop/aspect; deriving it from the input gives the same grid at the configured size
        and lets the model run at other multiples of 2**n_up."""
        scale = 2 ** self.num_upsamplings
        if height % scale or width % scale or height < scale or width < scale:
            raise ValueError(f"input size {height}x{width} must be a positive multiple of {scale} "
                             f"(num_upsampling_layers={self.num_upsampling_layers!r}); "
                             f"e.g. {self.input_size[0]}x{self.input_size[1]}")
        return height // scale, width // scale

    def _check_input(self, segmap: torch.Tensor) -> Tuple[int, int]:
        if segmap.dim() != 4 or segmap.size(1) != self.semantic_nc:
            raise ValueError(f"expected a one-hot semantic map [N, {self.semantic_nc}, H, W], "
                             f"got shape {tuple(segmap.shape)}")
        return self.latent_size(segmap.size(2), segmap.size(3))

    def _generate(self, segmap: torch.Tensor, run_fc, run_block, run_img) -> torch.Tensor:
        """Upstream's forward; ``run_block(name, x, segmap)`` runs one residual block."""
        sh, sw = self._check_input(segmap)
        x = run_fc(F.interpolate(segmap, size=(sh, sw), mode="nearest"))
        x = run_block("head_0", x, segmap)
        x = upsample(x)
        x = run_block("G_middle_0", x, segmap)
        if self.num_upsamplings >= 6:  # "more"/"most": the extra middle upsampling
            x = upsample(x)
        x = run_block("G_middle_1", x, segmap)
        for name in ("up_0", "up_1", "up_2", "up_3") + (("up_4",) if self.num_upsamplings >= 7 else ()):
            x = run_block(name, upsample(x), segmap)
        return torch.tanh(run_img(F.leaky_relu(x, LEAKY_SLOPE)))

    def forward(self, segmap: torch.Tensor) -> torch.Tensor:
        return self._generate(segmap, self.fc, lambda name, x, seg: getattr(self, name)(x, seg),
                              self.conv_img)


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class _FullSPADEGenerator(SPADEGeneratorBase):
    """Teacher / mobile teacher: every block at full width, hidden width 2*ngf."""

    block_class = SPADEResnetBlock

    def __init__(self, semantic_nc: int, output_nc: int = 3, ngf: int = 64, crop_size: int = 256,
                 aspect_ratio: float = 1.0, num_upsampling_layers: str = "normal",
                 spectral_norm: bool = False):
        super().__init__(semantic_nc, output_nc, crop_size, aspect_ratio, num_upsampling_layers)
        self.ngf = ngf
        self.fc = nn.Conv2d(semantic_nc, 16 * ngf, 3, padding=1)
        shapes = full_block_shapes(ngf, num_upsampling_layers)
        for name, (fin, fout) in shapes.items():
            setattr(self, name, self.block_class(fin, fout, semantic_nc, 2 * ngf, spectral_norm))
        final_nc = shapes["up_4"][1] if "up_4" in shapes else ngf
        self.conv_img = nn.Conv2d(final_nc, output_nc, 3, padding=1)

    def remove_spectral_norm(self) -> None:
        """Strip spectral norm (the Fast GAN Compression teacher runs without it)."""
        for module in self.modules():
            if isinstance(module, SPADEResnetBlockBase):
                module.remove_spectral_norm()


class SPADEGenerator(_FullSPADEGenerator):
    """GauGAN teacher. Cityscapes (semantic_nc 36, ngf 64, 512x256 "more"): 93.0M params.

    ``spectral_norm=True`` wraps the residual convs like NVlabs' ``spectralspadesyncbatch3x3``
    (keys ``weight_orig``/``weight_u``/``weight_v``); GAN Compression's teacher runs without it.
    """

    block_class = SPADEResnetBlock


class MobileSPADEGenerator(_FullSPADEGenerator):
    """The mobile teacher of the original GAN Compression flow; same keys as the supernet."""

    block_class = MobileSPADEResnetBlock


class SubMobileSPADEGenerator(SPADEGeneratorBase):
    """Standalone sub-network of a `SuperMobileSPADEGenerator` of width ``ngf``.

    ``config`` = [fc, head_0, G_middle_0, G_middle_1, up_0, up_1, up_2, up_3]; see
    `SpadeWidths.from_config`. Keys equal the supernet's and every tensor is a leading slice of
    the supernet's, except the batch-norm buffers, which keep the supernet width.
    """

    def __init__(self, semantic_nc: int, output_nc: int = 3, ngf: int = 64,
                 config="32_32_32_48_32_24_24_32", crop_size: int = 256, aspect_ratio: float = 1.0,
                 num_upsampling_layers: str = "normal"):
        if num_upsampling_layers == "most":
            raise ValueError('mobile SPADE sub-networks support num_upsampling_layers "normal" '
                             'or "more" (the 8-number config has no width for up_4)')
        super().__init__(semantic_nc, output_nc, crop_size, aspect_ratio, num_upsampling_layers)
        channels = config_channels(config, ngf, f"{type(self).__name__} config")
        self.ngf = ngf
        self.config = encode_config(channels)
        self.widths = SpadeWidths.from_config(channels)
        self.fc = nn.Conv2d(semantic_nc, self.widths.trunk, 3, padding=1)
        for name, (fin, fout) in full_block_shapes(ngf, num_upsampling_layers).items():
            setattr(self, name, SubMobileSPADEResnetBlock(fin, fout, self.widths.blocks[name], semantic_nc))
        self.conv_img = nn.Conv2d(self.widths.final, output_nc, 3, padding=1)
