import pytest

from compress.models import GENERATORS, arch_name, build_generator


def test_factory_names_are_the_official_nine():
    assert set(GENERATORS) == {
        "resnet_9blocks", "mobile_resnet_9blocks", "super_mobile_resnet_9blocks",
        "sub_mobile_resnet_9blocks", "legacy_sub_mobile_resnet_9blocks",
        "spade", "mobile_spade", "super_mobile_spade", "sub_mobile_spade"}


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="resnet_9blocks.*sub_mobile_spade"):
        build_generator("unet_256")


def test_wrong_keyword_and_missing_config_are_explained():
    with pytest.raises(ValueError, match="does not take config"):
        build_generator("resnet_9blocks", config="16_16_16_16_16_16_16_16")
    with pytest.raises(ValueError, match="semantic_nc instead of input_nc"):
        build_generator("spade", input_nc=3)
    with pytest.raises(ValueError, match="needs config"):
        build_generator("sub_mobile_resnet_9blocks")
    with pytest.raises(ValueError, match="expected 8"):
        build_generator("sub_mobile_resnet_9blocks", config="16_16_16")


def test_arch_name_inverts_the_factory():
    model = build_generator("sub_mobile_resnet_9blocks", config="8_8_8_8_8_8_8_8")
    assert arch_name(model) == "sub_mobile_resnet_9blocks"
