"""The generator zoo: every architecture GAN Compression trains, compresses or ships.

``build_generator(arch, **kwargs)`` is the one public way to make a generator; ``GENERATORS``
maps each architecture name (the official ``--netG`` names) to its class, explicitly.
State-dict keys and shapes match the official implementation, so released checkpoints load
with ``strict=True`` (see `compress.models.checkpoints`).
"""
from typing import Dict, Tuple

from torch import nn

from compress.models.extract import extract_subnet
from compress.models.resnet import (LegacySubMobileResnetGenerator, MobileResnetGenerator,
                                    ResnetGenerator, SubMobileResnetGenerator,
                                    SuperMobileResnetGenerator)
from compress.models.search_space import (SEARCH_SPACES, SearchSpace, encode_config,
                                          get_search_space, parse_config)
from compress.models.spade import MobileSPADEGenerator, SPADEGenerator, SubMobileSPADEGenerator
from compress.models.super_spade import SuperMobileSPADEGenerator

GENERATORS = {
    "resnet_9blocks": ResnetGenerator,
    "mobile_resnet_9blocks": MobileResnetGenerator,
    "super_mobile_resnet_9blocks": SuperMobileResnetGenerator,
    "sub_mobile_resnet_9blocks": SubMobileResnetGenerator,
    "legacy_sub_mobile_resnet_9blocks": LegacySubMobileResnetGenerator,
    "spade": SPADEGenerator,
    "mobile_spade": MobileSPADEGenerator,
    "super_mobile_spade": SuperMobileSPADEGenerator,
    "sub_mobile_spade": SubMobileSPADEGenerator,
}

_RESNET_ARGS = ("input_nc", "output_nc", "n_blocks", "dropout_rate")
_SPADE_ARGS = ("semantic_nc", "output_nc", "ngf", "crop_size", "aspect_ratio", "num_upsampling_layers")

# Keyword arguments each architecture accepts (anything else is a mistake worth reporting).
ACCEPTED_KWARGS: Dict[str, Tuple[str, ...]] = {
    "resnet_9blocks": _RESNET_ARGS + ("ngf",),
    "mobile_resnet_9blocks": _RESNET_ARGS + ("ngf",),
    "super_mobile_resnet_9blocks": _RESNET_ARGS + ("ngf", "config"),
    "sub_mobile_resnet_9blocks": _RESNET_ARGS + ("config",),
    "legacy_sub_mobile_resnet_9blocks": _RESNET_ARGS + ("config",),
    "spade": _SPADE_ARGS + ("spectral_norm",),
    "mobile_spade": _SPADE_ARGS,
    "super_mobile_spade": _SPADE_ARGS + ("config",),
    "sub_mobile_spade": _SPADE_ARGS + ("config",),
}

REQUIRED_KWARGS: Dict[str, Tuple[str, ...]] = {
    "sub_mobile_resnet_9blocks": ("config",),
    "legacy_sub_mobile_resnet_9blocks": ("config",),
    "spade": ("semantic_nc",),
    "mobile_spade": ("semantic_nc",),
    "super_mobile_spade": ("semantic_nc",),
    "sub_mobile_spade": ("semantic_nc", "config"),
}


def build_generator(arch: str, **kwargs) -> nn.Module:
    """Build a generator by architecture name, e.g.
    ``build_generator("sub_mobile_resnet_9blocks", config="16_16_32_16_32_32_16_16")``.

    ResNet family kwargs: input_nc, output_nc, ngf, n_blocks, config. SPADE family: semantic_nc,
    output_nc, ngf, crop_size, aspect_ratio, num_upsampling_layers, config. Raises ValueError
    for an unknown name, a keyword the architecture does not take, or a malformed config.
    """
    if arch not in GENERATORS:
        raise ValueError(f"unknown generator architecture {arch!r}; valid: {', '.join(GENERATORS)}")
    accepted = ACCEPTED_KWARGS[arch]
    unexpected = sorted(set(kwargs) - set(accepted))
    if unexpected:
        hint = " (SPADE generators take semantic_nc instead of input_nc)" if "input_nc" in unexpected else ""
        raise ValueError(f"{arch} does not take {', '.join(unexpected)}; it accepts: "
                         f"{', '.join(accepted)}{hint}")
    missing = [name for name in REQUIRED_KWARGS.get(arch, ()) if kwargs.get(name) is None]
    if missing:
        raise ValueError(f"{arch} needs {', '.join(missing)}"
                         + (", e.g. config='16_16_32_16_32_32_16_16'" if "config" in missing else ""))
    return GENERATORS[arch](**kwargs)


def arch_name(model: nn.Module) -> str:
    """The architecture name of a zoo generator instance (the inverse of `GENERATORS`)."""
    for name, cls in GENERATORS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a generator of the zoo")


__all__ = [
    "GENERATORS", "build_generator", "arch_name", "extract_subnet", "parse_config", "encode_config",
    "SearchSpace", "SEARCH_SPACES", "get_search_space",
    "ResnetGenerator", "MobileResnetGenerator", "SuperMobileResnetGenerator",
    "SubMobileResnetGenerator", "LegacySubMobileResnetGenerator",
    "SPADEGenerator", "MobileSPADEGenerator", "SuperMobileSPADEGenerator", "SubMobileSPADEGenerator",
]
