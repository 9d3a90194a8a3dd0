"""Channel configurations of the once-for-all generators: config strings and search spaces.

A sub-network of a supernet is named by a config string of channel numbers joined by ``_``,
e.g. ``16_16_32_16_32_32_16_16`` (the official encoding). This module parses and writes those
strings and holds the official search spaces (the per-position channel choices of
``configs/resnet_configs.py`` and ``configs/spade_configs.py`` upstream), with uniform
sampling, the largest/smallest members and exhaustive enumeration.
"""
import itertools
import os
import random
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

Channels = Tuple[int, ...]


def parse_config(config, lengths: Sequence[int] = (8,), what: str = "config") -> Channels:
    """Turn ``"16_16_32_16_32_32_16_16"`` (or a list of ints) into a tuple of positive ints.

    Raises ValueError naming the accepted lengths when the string is malformed.
    """
    allowed = " or ".join(str(n) for n in lengths)
    example = "_".join(["16"] * lengths[0])
    if isinstance(config, str):
        parts = config.strip().split("_")
        try:
            channels = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"malformed {what} string {config!r}: expected {allowed} positive integers joined "
                f"by '_', e.g. {example!r}") from None
    elif isinstance(config, (list, tuple)):
        channels = tuple(int(c) for c in config)
    else:
        raise ValueError(f"{what} must be a string like {example!r}, got {type(config).__name__}")
    if len(channels) not in lengths:
        raise ValueError(
            f"{what} {encode_config(channels)!r} has {len(channels)} numbers; expected {allowed}, "
            f"e.g. {example!r}")
    if any(c <= 0 for c in channels):
        raise ValueError(f"{what} {encode_config(channels)!r}: every channel number must be positive")
    return channels


def encode_config(channels: Sequence[int]) -> str:
    """``(16, 16, 32)`` -> ``"16_16_32"``."""
    return "_".join(str(int(c)) for c in channels)


@dataclass(frozen=True)
class SearchSpace:
    """Independent channel choices per config position; configs are tuples of ints."""

    family: str  # "resnet" or "spade"
    name: str
    choices: Tuple[Tuple[int, ...], ...]

    @property
    def size(self) -> int:
        total = 1
        for options in self.choices:
            total *= len(options)
        return total

    def __len__(self) -> int:  # upstream's ChannelConfigs.__len__ returned None; this one works
        return self.size

    def __contains__(self, config) -> bool:
        channels = parse_config(config, (len(self.choices),))
        return all(c in options for c, options in zip(channels, self.choices))

    def largest(self) -> Channels:
        return tuple(max(options) for options in self.choices)

    def smallest(self) -> Channels:
        return tuple(min(options) for options in self.choices)

    def sample(self, rng: Optional[random.Random] = None) -> Channels:
        """Each position drawn uniformly and independently (the official supernet sampler)."""
        rng = rng or random
        return tuple(rng.choice(options) for options in self.choices)

    def enumerate(self) -> Iterator[Channels]:
        """Every config, in a fixed order (first position varies slowest)."""
        return itertools.product(*self.choices)


def _space(family: str, name: str, *groups: Tuple[Sequence[int], int]) -> SearchSpace:
    choices = tuple(tuple(options) for options, repeat in groups for _ in range(repeat))
    return SearchSpace(family, name, choices)


# Official search spaces (sizes: 5,184 / 6,561 / 5,764,801 / 390,625 / 15,552 / 128,000).
SEARCH_SPACES: Dict[Tuple[str, str], SearchSpace] = {
    ("resnet", "channels-48"): _space(
        "resnet", "channels-48", ([48, 32], 2), ([48, 40, 32], 4), ([48, 32, 24, 16], 2)),
    ("resnet", "channels-32"): _space("resnet", "channels-32", ([32, 24, 16], 8)),
    ("resnet", "channels-64-pix2pix"): _space(
        "resnet", "channels-64-pix2pix", ([64, 56, 48, 40, 32, 24, 16], 8)),
    ("resnet", "channels-64-cycleGAN"): _space(
        "resnet", "channels-64-cycleGAN", ([64, 48, 32, 24, 16], 8)),
    ("spade", "channels-48"): _space("spade", "channels-48", ([48, 40, 32], 5), ([48, 40, 32, 24], 3)),
    ("spade", "channels-64"): _space(
        "spade", "channels-64", ([64, 48, 40, 32], 5), ([64, 48, 40, 32, 24], 3)),
}


def get_search_space(family: str, name: str) -> SearchSpace:
    """Look up an official search space, e.g. ``get_search_space("resnet", "channels-48")``."""
    try:
        return SEARCH_SPACES[(family, name)]
    except KeyError:
        valid = ", ".join(f"{f}/{n}" for f, n in SEARCH_SPACES)
        raise ValueError(f"unknown search space {family}/{name}; valid: {valid}") from None


def resolve_search_space(family: str, name: str, channel_choices=()) -> SearchSpace:
    """An official search space, or the "custom" one with the same choices at every position."""
    if name != "custom":
        return get_search_space(family, name)
    choices = tuple(sorted({int(c) for c in channel_choices}, reverse=True))
    return SearchSpace(family, "custom", (choices,) * 8)  # the same choices at all 8 positions


def search_space_of(meta: Dict[str, Any]) -> SearchSpace:
    """The search space a supernet checkpoint was trained on (from its metadata)."""
    family = "spade" if str(meta.get("arch", "")).endswith("spade") else "resnet"
    if "search_choices" not in meta:
        raise ValueError("this checkpoint's metadata names no search space (not written by "
                         "compress.supernet)")
    choices = tuple(tuple(int(c) for c in position) for position in meta["search_choices"])
    return SearchSpace(family, str(meta.get("search_space", "custom")), choices)


def load_supernet(path: str) -> Tuple[Any, Dict[str, Any]]:
    """A supernet checkpoint (eval mode) and its metadata; ValueError if it is not a supernet."""
    from compress.models.checkpoints import load_generator  # which imports this module
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such supernet checkpoint (train one with python -m compress.supernet)")
    model, meta = load_generator(path)
    if not hasattr(model, "make_subnet"):
        raise ValueError(f"{path} holds a {meta.get('arch')}, not a supernet (super_mobile_resnet_9blocks "
                         "or super_mobile_spade); give the supernet.safetensors of compress.supernet")
    return model.eval(), meta
