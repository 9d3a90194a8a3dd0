import random

import pytest

from compress.models.search_space import (SEARCH_SPACES, encode_config, get_search_space,
                                          parse_config)


def test_parse_and_encode_round_trip():
    assert parse_config("16_16_32_16_32_32_16_16") == (16, 16, 32, 16, 32, 32, 16, 16)
    assert encode_config((24, 24, 24, 32, 20, 16)) == "24_24_24_32_20_16"
    assert parse_config([8] * 6, (6,)) == (8,) * 6


@pytest.mark.parametrize("bad", ["16_16", "16_x_32_16_32_32_16_16", "", "16__32", "0_16_16_16_16_16_16_16"])
def test_malformed_configs_raise_value_error(bad):
    with pytest.raises(ValueError, match="16_16"):
        parse_config(bad)


@pytest.mark.parametrize("family,name,size", [
    ("resnet", "channels-48", 5_184), ("resnet", "channels-32", 6_561),
    ("resnet", "channels-64-pix2pix", 5_764_801), ("resnet", "channels-64-cycleGAN", 390_625),
    ("spade", "channels-48", 15_552), ("spade", "channels-64", 128_000)])
def test_official_search_space_sizes(family, name, size):
    space = get_search_space(family, name)
    assert space.size == len(space) == size


def test_sampling_enumeration_and_extremes():
    space = SEARCH_SPACES[("resnet", "channels-48")]
    assert space.largest() == (48,) * 8
    assert space.smallest() == (32, 32, 32, 32, 32, 32, 16, 16)
    configs = list(space.enumerate())
    assert len(configs) == len(set(configs)) == 5_184
    rng = random.Random(0)
    samples = [space.sample(rng) for _ in range(200)]
    assert all(s in space for s in samples)
    assert len(set(samples)) > 150  # uniform, independent positions: few repeats
    assert "64_64_64_64_64_64_64_64" not in space


def test_unknown_space_lists_valid_ones():
    with pytest.raises(ValueError, match="channels-48"):
        get_search_space("resnet", "channels-99")
