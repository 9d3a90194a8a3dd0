"""Running a compression search: set-up (supernet, space, held-out pairs, scorer), the exhaustive
and evolutionary loops, and the result tables. ``python -m compress.search`` is its command line;
`compress.pipeline` calls `run_search` directly.
"""
import hashlib
import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

from compress.common.config import diff_configs, load_config, save_config
from compress.models.search_space import load_supernet, search_space_of
from compress.searching.config import EXHAUSTIVE_RESUMABLE_CHANGES, RESUMABLE_CHANGES, SearchConfig
from compress.searching.results import (append_row, format_table, higher_is_better, merge_rows, pareto_front,
                                        read_log, within_latency, write_summary, write_table)

# ----------------------------------------------------------------------------- set-up

def resolve_space(cfg: SearchConfig, family: str, meta: Optional[Dict[str, Any]] = None):
    """The supernet's own space (``search_space`` empty: from its metadata), an official space
    named ``search_space``, or the custom one of ``search_choices``."""
    from compress.models import SearchSpace, get_search_space
    from compress.models.search_space import parse_config
    if not cfg.search_space:
        if cfg.search_choices:
            raise ValueError("search_choices is only read with search_space = \"custom\"")
        try:
            return search_space_of(meta or {})
        except ValueError:
            raise ValueError(f"{cfg.supernet} names no search space in its metadata: set search_space "
                             "(e.g. channels-64-pix2pix)") from None
    if cfg.search_space != "custom":
        if cfg.search_choices:
            raise ValueError("search_choices is only read with search_space = \"custom\"")
        return get_search_space(family, cfg.search_space)
    if len(cfg.search_choices) != 8:
        raise ValueError(f"search_space = \"custom\" needs search_choices with 8 entries (one per config "
                         f"position, e.g. \"32_24_16\"), got {len(cfg.search_choices)}")
    choices = tuple(tuple(sorted(set(parse_config(text, (len(text.split("_")),), "search_choices entry")),
                                 reverse=True)) for text in cfg.search_choices)
    return SearchSpace(family, "custom", choices)


def search_size(cfg: SearchConfig, meta: Dict[str, Any]) -> Tuple[int, int]:
    if cfg.crop_size is not None:
        return int(round(cfg.crop_size / cfg.aspect_ratio)), int(cfg.crop_size)
    if meta.get("resolution"):
        return int(meta["resolution"][0]), int(meta["resolution"][1])
    raise ValueError(f"{cfg.supernet} has no resolution in its metadata: set crop_size")


def _dataset(cfg: SearchConfig, size_hw: Tuple[int, int], stems=None, direction: Optional[str] = None):
    from compress.data import build_dataset
    # evaluation like upstream's search: resized straight to the search size, no flip, no crop
    return build_dataset(cfg.dataset_mode, cfg.dataroot, "train", direction=direction or cfg.direction,
                         load_size=size_hw, flip=False, random_crop=False, palette=cfg.palette,
                         input_encoding=cfg.input_encoding, instance_edges=cfg.instance_edges,
                         stems=stems, max_items=cfg.max_items if stems is None else None)


def holdout_setting(cfg: SearchConfig, meta: Dict[str, Any], log: Callable[[str], None]) -> Tuple[int, int]:
    """(held-out items, seed): the config's, else the supernet's (its metadata records the split
    it trained without). ValueError when neither holds anything out."""
    trained = meta.get("holdout") or {}
    items = cfg.holdout_items if cfg.holdout_items is not None else int(trained.get("items") or 0)
    seed = cfg.holdout_seed if cfg.holdout_seed is not None else int(trained.get("seed") or 0)
    if items < 1:
        raise ValueError(f"{cfg.supernet} trained on every training item (holdout_items = 0): the search "
                         "needs images the supernet never saw. Retrain it with holdout_items = N (the "
                         "official split holds out about 5%), or set holdout_items here knowingly")
    if trained and (items, seed) != (int(trained.get("items") or 0), int(trained.get("seed") or 0)):
        log(f"note: the search holds out {items} items (seed {seed}) but the supernet held out "
            f"{trained.get('items')} (seed {trained.get('seed')}): it may score images the supernet "
            "trained on")
    return items, seed


def holdout_stems(cfg: SearchConfig, size_hw: Tuple[int, int], items: int, seed: int
                  ) -> Tuple[List[str], List[str]]:
    """(training stems the supernet uses, held-out stems the search scores on): the same
    `compress.data.holdout_split` of the same stems as the supernet stage."""
    from compress.data import holdout_split
    stems = _dataset(cfg, size_hw).stems
    if items >= len(stems):
        raise ValueError(f"holdout_items = {items} but {cfg.dataroot} has only {len(stems)} training "
                         "items; hold out fewer")
    return holdout_split(stems, items, seed)


def build_evaluator(cfg: SearchConfig, supernet, size_hw: Tuple[int, int], device: torch.device,
                    holdout: Tuple[int, int]):
    """The `CandidateEvaluator` for ``cfg``: held-out batches, real statistics, teacher, segmenter."""
    from compress.searching.candidates import CandidateEvaluator, HeldOutBatches
    train_stems, held = holdout_stems(cfg, size_hw, *holdout)
    held_set = _dataset(cfg, size_hw, stems=held)
    unaligned = cfg.dataset_mode == "unaligned"
    # unaligned sets pair A[i] with a random B: iterate the A images, and read B on its own
    count = len(held_set.A_paths) if unaligned else len(held_set)
    batches = HeldOutBatches(held_set, range(count), cfg.batch_size, ("A", "label"), desc="held-out inputs")
    real_stats = None
    if cfg.metric in ("fid", "kid"):
        from compress.metrics import real_statistics, to_uint8_images
        if unaligned:
            other = "BtoA" if cfg.direction == "AtoB" else "AtoB"
            real_set, real_key, real_count = _dataset(cfg, size_hw, held, other), "A", None
            real_count = len(real_set.A_paths)
        else:
            real_set, real_key, real_count = held_set, "B", len(held_set)
        digest = hashlib.sha1("\n".join(held).encode()).hexdigest()[:10]
        name = os.path.basename(os.path.normpath(cfg.dataroot)) or "data"
        key = (f"search_{name}_{cfg.dataset_mode}_{cfg.direction}_holdout{len(held)}_"
               f"{size_hw[0]}x{size_hw[1]}_{digest}")
        key = "".join(c if c.isalnum() or c in "._+-" else "-" for c in key)

        def real_images():
            # streamed (memory limit 0): only read on a cache miss, once
            for batch in HeldOutBatches(real_set, range(real_count), cfg.batch_size, (real_key,), 0):
                yield to_uint8_images(batch[real_key])

        real_stats = real_statistics(real_images, key, cache_dir=cfg.real_stats_dir
                                     or os.path.join(cfg.output_dir, "real_stats"), device=str(device))
    teacher = segment = None
    num_classes = ignore_id = None
    if cfg.metric == "fidelity":
        from compress.models.checkpoints import load_generator
        teacher, _ = load_generator(cfg.teacher)
    if cfg.metric == "miou":
        from compress.common.palettes import load_palette
        from compress.metrics.segmenter import load_segmenter
        from compress.metrics.segmenter import segment as run_segmenter
        segmenter, _ = load_segmenter(cfg.segmenter, device=str(device))
        palette = load_palette(cfg.palette)
        num_classes, ignore_id = palette.num_classes, palette.ignore_id

        def segment(images):
            return run_segmenter(segmenter, images, batch_size=cfg.batch_size)
    calibrate = None
    if getattr(supernet, "family", "resnet") == "spade":
        calibrate = make_calibration(cfg, size_hw, train_stems)
    return CandidateEvaluator(supernet, cfg.metric, batches, device, real_stats=real_stats, teacher=teacher,
                              segment=segment, num_classes=num_classes, ignore_id=ignore_id,
                              calibrate=calibrate)


def make_calibration(cfg: SearchConfig, size_hw: Tuple[int, int],
                     train_stems: List[str]) -> Callable[[Any, str], None]:
    """SPADE: ``calibrate(supernet, config)`` re-estimates the batch-norm statistics of that config
    on ``calibration_images`` training images (not the held-out ones), as upstream does."""
    from compress.distillation.calibration import calibrate_batchnorm, calibration_batches
    train_set = _dataset(cfg, size_hw, stems=train_stems)
    inputs = list(calibration_batches(train_set, cfg.calibration_images, cfg.batch_size))

    def calibrate(supernet, config: str) -> None:
        calibrate_batchnorm(supernet, inputs, config=config)
    return calibrate


def prepare_output_dir(cfg: SearchConfig, force: bool) -> None:
    """Start over (--force) or check that a resumed search keeps its result-defining settings."""
    saved = cfg.path("search_config.toml")
    outputs = [cfg.path(n) for n in ("search_log.jsonl", "search_results.json", "search_pareto.json",
                                     "search_summary.json")]
    outputs.append(os.path.join(cfg.output_dir, "evolution_state.json"))
    if force:
        for path in outputs:
            if os.path.isfile(path):
                os.remove(path)
    elif os.path.isfile(saved) and os.path.isfile(cfg.path("search_log.jsonl")):
        ignored = EXHAUSTIVE_RESUMABLE_CHANGES if cfg.strategy == "exhaustive" else RESUMABLE_CHANGES
        changed = {k: v for k, v in diff_configs(load_config(SearchConfig, saved), cfg).items()
                   if k not in ignored}
        if changed:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise ValueError(f"{cfg.output_dir} holds a search with other settings ({lines}); resume it "
                             f"with the settings of {saved}, choose another output_dir, or pass --force")
    save_config(cfg, saved, header="resolved configuration of this search (rerun to resume)")


# ----------------------------------------------------------------------------- the search

def run_search(cfg: SearchConfig, force: bool = False, measure: Optional[Callable[..., float]] = None,
               log: Callable[[str], None] = tqdm.write) -> Dict[str, Any]:
    """Run (or resume) the search described by ``cfg``; returns the summary (also written to
    ``search_summary.json``). ``measure`` replaces the built-in latency measurer (for instance
    one that times TensorRT engines); it needs a ``describe()`` dict for the LUT key."""
    from compress.models.checkpoints import build_kwargs_of
    from compress.searching.latency import LatencyLUT, LatencyMeasurer
    from compress.models import arch_name
    from compress.searching.candidates import CostModel
    from compress.training.distributed import resolve_device

    os.makedirs(cfg.output_dir, exist_ok=True)
    prepare_output_dir(cfg, force)
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    device = resolve_device(cfg.device)
    supernet, meta = load_supernet(cfg.supernet)
    space = resolve_space(cfg, supernet.family, meta)
    try:
        supernet.widths_for(space.largest())
    except ValueError as error:
        raise ValueError(f"search space {cfg.search_space} does not fit {cfg.supernet}: {error}") from None
    size_hw = search_size(cfg, meta)
    if cfg.budget_latency_ms is not None and measure is None:
        measure = LatencyMeasurer(cfg.latency_backend, cfg.latency_device, cfg.latency_threads,
                                  cfg.latency_warmup, cfg.latency_runs)
    lut = LatencyLUT(cfg.latency_lut or os.path.join(cfg.output_dir, "latency_lut.json"))
    cost = CostModel(supernet, size_hw, cfg.path("profile_cache.json"), cfg.budget_macs,
                     cfg.budget_latency_ms, measure, lut, cfg.min_latency_ms)
    cost.check_budget(space.smallest(), where=cfg.supernet)
    supernet.to(device)
    holdout = holdout_setting(cfg, meta, log)
    evaluator = build_evaluator(cfg, supernet, size_hw, device, holdout)
    log_path = cfg.path("search_log.jsonl")
    done = {row["config"]: row for row in read_log(log_path)}
    resumed = len(done)
    shard = cfg.shard if cfg.num_shards > 1 else None
    generation: List[Optional[int]] = [None]

    def evaluate(config) -> Dict[str, Any]:
        key = "_".join(str(c) for c in config)
        if key not in done:
            value, extra = evaluator(key)
            row = dict(config=key, metric=cfg.metric, value=value, shard=shard, **cost.costs(key))
            if generation[0] is not None:
                row["generation"] = generation[0]
            row.update(extra)
            append_row(log_path, row)
            done[key] = row
        elif cfg.budget_latency_ms is not None and done[key].get("latency_ms") is None:
            # logged by an earlier run without a latency budget: measure it now (the log keeps the
            # last row of a config)
            done[key] = dict(done[key], latency_ms=cost.latency(key))
            append_row(log_path, done[key])
        return done[key]

    if cfg.strategy == "exhaustive":
        _exhaustive(cfg, space, cost, evaluate, done, log)
    else:
        _evolution(cfg, space, cost, evaluate, done, generation)
    cost.save()
    rows = [row for row in done.values() if _within(row, cfg)]
    summary = finish(cfg, rows, log)
    summary.update(search_space=cfg.search_space, supernet=cfg.supernet, arch=arch_name(supernet),
                   build=build_kwargs_of(supernet), size=list(size_hw), resumed_rows=resumed,
                   latency_measurements=cost.latency_measurements,
                   holdout={"items": holdout[0], "seed": holdout[1]})
    write_summary(cfg.path("search_summary.json"), summary)
    return summary


def _exhaustive(cfg: SearchConfig, space, cost, evaluate: Callable, done: Dict[str, Any],
                log: Callable[[str], None]) -> None:
    """Score every config of this shard that fits the budget."""
    from compress.searching.evolution import shard_configs
    total = (space.size - cfg.shard + cfg.num_shards - 1) // cfg.num_shards
    if total > 200_000:
        log(f"note: {total:,} configs in this shard; exhaustive search profiles every one of them "
            "(evolution is the practical choice for spaces this large)")
    over = 0
    with tqdm(shard_configs(space, cfg.num_shards, cfg.shard), total=total, unit="config",
              desc=f"exhaustive{cfg.suffix()}") as bar:
        for config in bar:
            if not cost.fits(config):
                over += 1
                continue
            row = evaluate(config)
            bar.set_postfix_str(f"{cfg.metric} {row['value']:.4g}, {len(done)} evaluated, "
                                f"{over} over budget", refresh=False)


def _evolution(cfg: SearchConfig, space, cost, evaluate: Callable, done: Dict[str, Any],
               generation: List[Optional[int]]) -> None:
    """Fast GAN Compression's evolutionary search, resumed from ``evolution_state.json``;
    ``generation[0]`` tells ``evaluate`` which generation a new row belongs to."""
    from compress.common.atomic import atomic_write_text
    from compress.searching.evolution import EvolutionSearch
    sign = -1.0 if higher_is_better(cfg.metric) else 1.0
    state_path = os.path.join(cfg.output_dir, "evolution_state.json")
    state = None
    if os.path.isfile(state_path):
        with open(state_path, encoding="utf-8") as handle:
            state = json.load(handle)
    search = EvolutionSearch(space, cost.fits, lambda c: sign * float(evaluate(c)["value"]),
                             population=cfg.population, parents_fraction=cfg.parents_fraction,
                             mutation_fraction=cfg.mutation_fraction, mutate_prob=cfg.mutate_prob,
                             weighted_sample=cfg.weighted_sample, weight_strategy=cfg.weight_strategy,
                             seed=cfg.seed)
    start = 0 if state is None else int(state["generation"]) + 1
    with tqdm(total=cfg.generations + 1, initial=min(start, cfg.generations + 1), unit="gen",
              desc="evolution") as bar:
        generation[0] = start

        def on_generation(new_state: Dict[str, Any]) -> None:
            atomic_write_text(state_path, json.dumps(new_state) + "\n", overwrite=True)
            cost.save()
            best = new_state["history"][-1]
            bar.update(1)
            bar.set_postfix_str(f"best {best['config']} {cfg.metric} {sign * best['score']:.4g}, "
                                f"{len(done)} evaluated", refresh=False)
            generation[0] = int(new_state["generation"]) + 1

        search.run(cfg.generations, state, on_generation)


def _within(row: Dict[str, Any], cfg: SearchConfig) -> bool:
    if cfg.budget_macs is not None and float(row["macs"]) > cfg.budget_macs:
        return False
    if cfg.budget_latency_ms is not None:
        return within_latency(row.get("latency_ms"), cfg.budget_latency_ms, cfg.min_latency_ms)
    return True


def finish(cfg: SearchConfig, rows: List[Dict[str, Any]], log: Callable[[str], None]) -> Dict[str, Any]:
    """Write the table and Pareto front of ``rows`` and print them; the summary dict."""
    if not rows:
        raise ValueError(f"{cfg.output_dir}: no config was evaluated within the budget")
    rows = merge_rows([rows])
    cost = "latency_ms" if cfg.budget_latency_ms is not None else "macs"
    front = pareto_front(rows, cost)
    write_table(cfg.path("search_results.json"), rows)
    write_table(cfg.path("search_pareto.json"), front)
    best = rows[0]
    log(format_table(front, f"Pareto front ({cost} vs {cfg.metric}), {len(front)} of {len(rows)} configs:"))
    log(format_table([best], f"best {cfg.metric} within the budget:"))
    return {"strategy": cfg.strategy, "metric": cfg.metric, "higher_is_better": higher_is_better(cfg.metric),
            "budget_macs": cfg.budget_macs, "budget_latency_ms": cfg.budget_latency_ms,
            "min_latency_ms": cfg.min_latency_ms, "shard": cfg.shard if cfg.num_shards > 1 else None,
            "num_shards": cfg.num_shards,
            "evaluated": len(rows), "best": best, "pareto": front,
            "results": cfg.path("search_results.json")}
