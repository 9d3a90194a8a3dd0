"""Building blocks shared by the mobile and once-for-all generators.

`SeparableConv2d` is the MobileNet-style replacement for a dense 3x3 convolution used by the
official GAN Compression students; the `Super*` layers are its width-sliceable versions: they
hold weights at the supernet's maximum width and run with the *leading* channels only, which is
how the official supernets share weights between sub-networks. Key names and tensor layouts
follow the official implementation so that released checkpoints load with ``strict=True``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def instance_norm(num_channels: int) -> nn.InstanceNorm2d:
    """Parameter-free InstanceNorm, as every official ResNet generator uses (`--norm instance`)."""
    return nn.InstanceNorm2d(num_channels, affine=False, track_running_stats=False)


class SuperInstanceNorm2d(nn.InstanceNorm2d):
    """Parameter-free InstanceNorm that accepts any width (a supernet runs narrower inputs
    through norms built at maximum width; plain InstanceNorm2d warns about that)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, eps=self.eps)


def super_instance_norm(num_channels: int) -> SuperInstanceNorm2d:
    return SuperInstanceNorm2d(num_channels, affine=False, track_running_stats=False)


class SeparableConv2d(nn.Module):
    """Depthwise kxk conv -> InstanceNorm -> pointwise 1x1 conv.

    Keys: ``conv.0`` (depthwise, weight [C, 1, k, k]) and ``conv.2`` (pointwise, [C', C, 1, 1]).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 0, use_bias: bool = True):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                      groups=in_channels, bias=use_bias),
            instance_norm(in_channels),
            nn.Conv2d(in_channels, out_channels, 1, stride=1, bias=use_bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _checked_width(layer: nn.Module, in_channels: int, out_channels: Optional[int]) -> int:
    """The output width a super layer runs at (its full width when not given); ValueError when a
    width exceeds the layer's."""
    out_channels = layer.out_channels if out_channels is None else out_channels
    if out_channels > layer.out_channels or in_channels > layer.in_channels:
        raise ValueError(f"width ({in_channels}->{out_channels}) exceeds the supernet layer "
                         f"({layer.in_channels}->{layer.out_channels}); use a config inside the search space")
    return out_channels


class SuperConv2d(nn.Conv2d):
    """A Conv2d that runs with its first ``out_channels`` filters on however many input
    channels arrive (``weight[:out, :in]``). Depthwise layers (groups == in_channels) slice
    both the filters and the group count to the input width."""

    def forward(self, x: torch.Tensor, out_channels: Optional[int] = None) -> torch.Tensor:
        in_channels = x.size(1)
        if self.groups == 1:
            out_channels = _checked_width(self, in_channels, out_channels)
            weight = self.weight[:out_channels, :in_channels]
            bias = None if self.bias is None else self.bias[:out_channels]
            groups = 1
        elif self.groups == self.in_channels == self.out_channels:  # depthwise
            if in_channels > self.in_channels:
                raise ValueError(f"depthwise width {in_channels} exceeds the supernet's {self.in_channels}")
            weight = self.weight[:in_channels]
            bias = None if self.bias is None else self.bias[:in_channels]
            groups = in_channels
        else:
            raise NotImplementedError("SuperConv2d supports dense and depthwise convolutions only")
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)


class SuperConvTranspose2d(nn.ConvTranspose2d):
    """A ConvTranspose2d sliced to ``weight[:in, :out]`` (its weight layout is [in, out, k, k])."""

    def forward(self, x: torch.Tensor, out_channels: Optional[int] = None) -> torch.Tensor:  # type: ignore[override]
        in_channels = x.size(1)
        out_channels = _checked_width(self, in_channels, out_channels)
        weight = self.weight[:in_channels, :out_channels]
        bias = None if self.bias is None else self.bias[:out_channels]
        return F.conv_transpose2d(x, weight, bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class SuperSeparableConv2d(nn.Module):
    """Width-sliceable `SeparableConv2d`: the depthwise part follows the input width, the
    pointwise part outputs ``out_channels``. Same keys as `SeparableConv2d`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 0, use_bias: bool = True):
        super().__init__()
        self.conv = nn.Sequential(
            SuperConv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                        groups=in_channels, bias=use_bias),
            super_instance_norm(in_channels),
            SuperConv2d(in_channels, out_channels, 1, stride=1, bias=use_bias),
        )

    def forward(self, x: torch.Tensor, out_channels: Optional[int] = None) -> torch.Tensor:
        depthwise, norm, pointwise = self.conv
        return pointwise(norm(depthwise(x)), out_channels)
