"""The evolution's biased first-population sampling: >1 favours narrow widths (upstream), <1 wide
ones (a slow latency window), 1 is uniform; and the bias shows in what a seeded search draws."""
import pytest

from compress.models.search_space import SearchSpace
from compress.searching.evolution import EvolutionSearch, _position_weights

WIDTHS = (32, 24, 16, 8)


def test_arithmetic_and_geometric_weights_favour_narrow_above_one_and_wide_below():
    narrow = dict(zip(WIDTHS, _position_weights(WIDTHS, 3.0)))
    assert narrow[8] / narrow[32] == pytest.approx(3.0)  # the narrowest 3x as often as the widest
    assert narrow[32] < narrow[24] < narrow[16] < narrow[8]
    wide = dict(zip(WIDTHS, _position_weights(WIDTHS, 1 / 3.0)))
    assert wide[32] / wide[8] == pytest.approx(3.0)  # mirrored
    assert wide[32] > wide[24] > wide[16] > wide[8]
    geometric = dict(zip(WIDTHS, _position_weights(WIDTHS, 0.5, "geometric")))
    assert [geometric[w] for w in (8, 16, 24, 32)] == pytest.approx([1, 2, 4, 8])
    assert _position_weights(WIDTHS, 1.0) is None and _position_weights((16,), 0.5) is None


def _mean_width(weighted_sample: float, draws: int = 400) -> float:
    space = SearchSpace("resnet", "test", (WIDTHS,) * 4)
    search = EvolutionSearch(space, fits=lambda config: True, score=lambda config: 0.0,
                             weighted_sample=weighted_sample, seed=1)
    configs = [search.random_config(weighted=True) for _ in range(draws)]
    return sum(sum(config) for config in configs) / (4.0 * draws)


def test_a_seeded_first_population_draws_wider_below_one_and_narrower_above():
    uniform = _mean_width(1.0)
    assert abs(uniform - 20.0) < 1.5  # the mean of 32, 24, 16, 8
    assert _mean_width(0.25) > uniform + 3 and _mean_width(4.0) < uniform - 3


def test_weighted_sample_must_be_positive():
    space = SearchSpace("resnet", "test", (WIDTHS,))
    with pytest.raises(ValueError, match="weighted_sample must be > 0"):
        EvolutionSearch(space, fits=lambda config: True, score=lambda config: 0.0, weighted_sample=0.0)
