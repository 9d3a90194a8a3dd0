"""Search strategies over a channel search space: exhaustive (sharded) and evolutionary.

Both are plain algorithms over config tuples; `compress.search` supplies the two callables
they need:

- ``fits(config) -> bool``: whether the config is within the budget (MACs and/or latency;
  cached by the caller, so asking twice is free);
- ``score(config) -> float``: the metric of the config, oriented so that *lower is better*
  (the caller negates mIoU / PSNR), cached so that no config is evaluated twice.

`shard_configs` enumerates the space in a fixed order and deals it round-robin to shards, so
shards get similar mixes of large and small configs and their union is the whole space.

`EvolutionSearch` follows Fast GAN Compression's ``evolution_search.py``: a population of
random configs under the budget (optionally biased to small widths), then per generation the
best ``parents_fraction`` survive and the rest of the population is refilled with children,
``mutation_fraction`` of them by mutation (each position resampled with ``mutate_prob``) and the
others by uniform crossover of two parents; every child is rejection-sampled until it fits the
budget. Upstream kept only the mutation children in the next population (a slip: crossover
children were evaluated and dropped); here all children join it. The state after each
generation (population, history, random-generator state) is a JSON-able dict, so a search
resumes after the last finished generation and a seeded run is reproducible.
"""
import random
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from compress.models.search_space import SearchSpace, encode_config

Config = Tuple[int, ...]


def shard_configs(space: SearchSpace, num_shards: int = 1, shard: int = 0) -> Iterator[Config]:
    """The configs of shard ``shard`` of ``num_shards``: every num_shards-th config of the
    space's fixed enumeration order, starting at index ``shard``."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards - 1] with num_shards >= 1, got shard {shard} "
                         f"of {num_shards}")
    for index, config in enumerate(space.enumerate()):
        if index % num_shards == shard:
            yield tuple(config)


WEIGHT_STRATEGIES = ("arithmetic", "geometric")


def _position_weights(options: Sequence[int], weighted_sample: float,
                      strategy: str = "arithmetic") -> Optional[List[float]]:
    """Weights of one position's choices for biased first-generation sampling (upstream's
    ``--weighted_sample`` and ``--weight_strategy``). ``weighted_sample`` > 1 favours narrow
    widths: "arithmetic" grows linearly so that the narrowest is drawn ``weighted_sample`` times
    as often as the widest; "geometric" multiplies by ``weighted_sample`` per rank. Below 1 (our
    addition) it mirrors that, favouring wide widths by ``1 / weighted_sample``: a slow latency
    window (a ladder's quality rung) rejects almost every uniform draw, one timing each."""
    if abs(weighted_sample - 1.0) <= 1e-9 or len(options) < 2:
        return None
    factor = weighted_sample if weighted_sample > 1 else 1.0 / weighted_sample
    ranked = sorted(set(options), reverse=weighted_sample > 1)  # rank 0: the width drawn least often
    ranks = {width: rank for rank, width in enumerate(ranked)}
    if strategy == "geometric":
        return [factor ** ranks[width] for width in options]
    start = (len(ranks) - 1) / (factor - 1.0)
    return [start + ranks[width] for width in options]


class BudgetTooTight(ValueError):
    """Rejection sampling found no config under the budget in the allowed number of draws."""


class EvolutionSearch:
    """Evolutionary search (see the module docstring).

    Args:
        space: the search space.
        fits: config -> within budget?  score: config -> metric, lower is better.
        population: population size (upstream 100).
        parents_fraction: share of the population kept as parents (upstream 0.25).
        mutation_fraction: share of the children made by mutation, the rest by crossover (0.5).
        mutate_prob: per-position resampling probability of a mutation (scripts: 0.2-0.4).
        weighted_sample: >1 biases the first generation to narrow widths, <1 to wide ones (1 = uniform), with
            ``weight_strategy`` "arithmetic" or "geometric" (see `_position_weights`).
        seed: seed of the search's own random generator (nothing else is seeded here).
        max_draws: rejection-sampling draws per child before giving up with BudgetTooTight.
    """

    def __init__(self, space: SearchSpace, fits: Callable[[Config], bool],
                 score: Callable[[Config], float], population: int = 100, parents_fraction: float = 0.25,
                 mutation_fraction: float = 0.5, mutate_prob: float = 0.2, weighted_sample: float = 1.0,
                 weight_strategy: str = "arithmetic", seed: int = 0, max_draws: int = 10000):
        if population < 2:
            raise ValueError(f"population must be >= 2, got {population}")
        if not 0 < parents_fraction < 1:
            raise ValueError(f"parents_fraction must be in (0, 1), got {parents_fraction}")
        if not 0 <= mutation_fraction <= 1:
            raise ValueError(f"mutation_fraction must be in [0, 1], got {mutation_fraction}")
        if not 0 < mutate_prob <= 1:
            raise ValueError(f"mutate_prob must be in (0, 1], got {mutate_prob}")
        if not weighted_sample > 0:
            raise ValueError(f"weighted_sample must be > 0 (1 = uniform, >1 narrow, <1 wide), "
                             f"got {weighted_sample}")
        if weight_strategy not in WEIGHT_STRATEGIES:
            raise ValueError(f"weight_strategy must be one of {', '.join(WEIGHT_STRATEGIES)}, "
                             f"got {weight_strategy!r}")
        self.space, self.fits, self.score = space, fits, score
        self.population_size = population
        self.num_parents = max(1, int(round(parents_fraction * population)))
        self.num_mutations = int(round(mutation_fraction * (population - self.num_parents)))
        self.mutate_prob, self.weighted_sample = mutate_prob, weighted_sample
        self.weight_strategy = weight_strategy
        self.max_draws = max_draws
        self.rng = random.Random(seed)

    # ------------------------------------------------------------------------- sampling

    def _draw(self, make: Callable[[], Config], what: str) -> Config:
        for _ in range(self.max_draws):
            config = make()
            if self.fits(config):
                return config
        raise BudgetTooTight(f"{self.max_draws} {what} draws found no config within the budget; raise "
                             "the budget, or change weighted_sample (>1 draws narrower configs, <1 wider "
                             "ones, for a latency window's lower end)")

    def random_config(self, weighted: bool = False) -> Config:
        def make() -> Config:
            chosen = []
            for options in self.space.choices:
                weights = (_position_weights(options, self.weighted_sample, self.weight_strategy)
                           if weighted else None)
                chosen.append(self.rng.choices(options, weights=weights)[0])
            return tuple(chosen)
        return self._draw(make, "random-sample")

    def mutate(self, parent: Config) -> Config:
        def make() -> Config:
            return tuple(self.rng.choice(options) if self.rng.random() < self.mutate_prob else value
                         for value, options in zip(parent, self.space.choices))
        return self._draw(make, "mutation")

    def crossover(self, first: Config, second: Config) -> Config:
        def make() -> Config:
            return tuple(self.rng.choice(pair) for pair in zip(first, second))
        return self._draw(make, "crossover")

    # ------------------------------------------------------------------------- generations

    def _ranked(self, population: Sequence[Config]) -> List[Config]:
        """Distinct configs of ``population``, best first (ties by config string: deterministic)."""
        unique = list(dict.fromkeys(tuple(c) for c in population))
        return sorted(unique, key=lambda c: (self.score(c), encode_config(c)))

    def initial_state(self) -> Dict[str, Any]:
        population = [self.random_config(weighted=True) for _ in range(self.population_size)]
        for config in population:
            self.score(config)
        return self._state(0, population, [])

    def _state(self, generation: int, population: Sequence[Config], history: List[Dict[str, Any]]
               ) -> Dict[str, Any]:
        best = self._ranked(population)[0]
        history = list(history) + [{"generation": generation, "config": encode_config(best),
                                    "score": self.score(best)}]
        version, internal, gauss = self.rng.getstate()
        return {"generation": generation, "population": [encode_config(c) for c in population],
                "history": history, "rng": [version, list(internal), gauss]}

    def restore(self, state: Dict[str, Any]) -> List[Config]:
        """Load a saved state's random-generator state; returns its population."""
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        return [tuple(int(v) for v in c.split("_")) for c in state["population"]]

    def next_generation(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """One generation from a state (``initial_state`` or an earlier ``next_generation``)."""
        population = self.restore(state)
        parents = self._ranked(population)[:self.num_parents]
        children: List[Config] = []
        for _ in range(self.num_mutations):
            children.append(self.mutate(parents[self.rng.randrange(len(parents))]))
        while len(parents) + len(children) < self.population_size:
            first = parents[self.rng.randrange(len(parents))]
            second = parents[self.rng.randrange(len(parents))]
            children.append(self.crossover(first, second))
        for config in children:
            self.score(config)
        return self._state(int(state["generation"]) + 1, parents + children, state["history"])

    def run(self, generations: int, state: Optional[Dict[str, Any]] = None,
            on_generation: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
        """Run until ``generations`` generations after the initial one are done, starting from
        ``state`` (resume) or a fresh initial population; ``on_generation(state)`` after each
        (the caller saves it). Returns the final state."""
        if state is None:
            state = self.initial_state()
            if on_generation is not None:
                on_generation(state)
        else:
            self.restore(state)
        while int(state["generation"]) < generations:
            state = self.next_generation(state)
            if on_generation is not None:
                on_generation(state)
        return state
