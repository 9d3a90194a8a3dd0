"""A compute ladder: several students from one trained supernet, each chosen by a search under
a measured-latency budget, so that the demo can trade quality for speed without retraining.

    python -m compress.pipeline configs/facades_cutmix_compress.toml     (supernet, default student)
    python -m compress.ladder configs/facades_cutmix_compress.toml       (the rungs, from that supernet)

The ladder reads the pipeline's own TOML: its ``[pipeline]`` and stage tables, plus a
``[ladder]`` table (`LadderConfig`). Each rung is ``name:speedup``: the search stage runs again
with ``budget_latency_ms = teacher latency / speedup``, both timed the same way (the search's
``latency_*`` settings: by default ONNX Runtime, 1 thread, on the exact graph ``export.onnx``
ships), then the rung is fine-tuned (when the pipeline fine-tunes) and extracted. A rung's
folder ``<output_dir>/ladder/<name>/`` holds its search, finetune and extract outputs; they reuse
the pipeline's supernet (and its discriminator and adaptors), and every rung shares one latency
LUT, ``<output_dir>/ladder/latency_lut.json``. Before a rung's first search, the rows of the
earlier searches of the same supernet and metric are copied into its log, so a sub-network is
scored once for the whole ladder; its latency is measured once, then read from the LUT.

Outputs in ``<output_dir>/ladder/``: ``<name>.safetensors`` per rung (the default student of
the pipeline too, as ``default``), each with the metadata ``rung``, ``latency_ms``,
``teacher_latency_ms`` and ``speedup`` (``export.onnx`` carries them into the ONNX file, where
the app's compute slider reads them); ``population.json`` (every scored sub-network with its
latency); ``quality_vs_latency.png``; ``ladder.json`` (the summary). Like the pipeline, a
finished stage is skipped and an interrupted one resumes.
"""
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import config_from_dict, describe_config, option
from compress.pipeline import (Layout, PipelineConfig, exit_code_of_stages, load_pipeline, run_stage,
                               stage_config, stage_settings, write_stage_toml)

TEACHER_KEY = "teacher"  # the LUT's config name for the full teacher


@dataclass
class LadderConfig:
    rungs: List[str] = option(["quality:3.5", "fast:9"],
                              "rungs as name:speedup: each is the best sub-network (by the search "
                              "metric) at least `speedup` times faster than the teacher, both "
                              "timed by the search's latency settings; name:least-most (e.g. "
                              "quality:3-4) also keeps it at most `most` times faster")
    default_rung: str = option("default", "name of the pipeline's own student among the rungs "
                                          "(empty: leave it out)")
    default_student: str = option("", "checkpoint of the default rung instead of the pipeline's own "
                                      "student, e.g. one distilled outside this supernet (it is timed "
                                      "and stamped like the rungs; it has no search score)")
    finetune: Optional[bool] = option(None, "fine-tune each rung (default: as the pipeline does)")
    time_population: bool = option(True, "time every scored sub-network (LUT-cached) for the population "
                                         "plot, also those scored by searches without a latency budget")
    confirm_runs: int = option(2, "re-time a rung's chosen sub-network this many more times and use the "
                                  "median of all its timings, choosing again if it no longer fits (one "
                                  "timing on a busy or throttling CPU can be off by 25 %); 0: trust it")
    reuse_rows: bool = option(True, "copy the earlier searches' scores into a rung's first search "
                                    "(same supernet, metric and held-out pairs): no config is scored twice")

    def __post_init__(self) -> None:
        parsed = self.parsed_rungs()
        names = [name for name, _ in parsed] + ([self.default_rung] if self.default_rung else [])
        if len(set(names)) != len(names):
            raise ValueError(f"rung names must be unique (the default student is {self.default_rung!r}); "
                             f"got {', '.join(names)}")

    def parsed_rungs(self) -> List[Tuple[str, float]]:
        """(name, speedup) of each rung: its latency budget is teacher / speedup."""
        return [(name, low) for name, low, _ in self.rung_specs()]

    def rung_specs(self) -> List[Tuple[str, float, Optional[float]]]:
        """(name, speedup, most speedup or None) of each rung: "fast:9" or "quality:3-4" (the
        best sub-network 3 to 4 times faster, so that a slow rung is not as fast as the others
        when the search metric is flat)."""
        rungs = []
        for text in self.rungs:
            name, _, speedup = str(text).partition(":")
            low_text, dash, high_text = speedup.partition("-")
            try:
                low, high = float(low_text), (float(high_text) if dash else None)
            except ValueError:
                low, high = float("nan"), None
            if (not name or not name.replace("_", "").replace("-", "").isalnum() or not low > 1.0
                    or (high is not None and not high > low)):
                raise ValueError(f"rung {text!r}: write name:speedup (or name:least-most) with a plain "
                                 "name (letters, digits, - or _) and a speedup > 1, e.g. \"fast:9\" or "
                                 "\"quality:3-4\"")
            rungs.append((name, low, high))
        if not rungs:
            raise ValueError("rungs is empty: give at least one name:speedup")
        return rungs


class RungLayout(Layout):
    """A rung's stages under ``<pipeline>/ladder/<name>``, reading the pipeline's supernet.
    The rung's config is ``choice.json`` (the best under its budget among the rows of every
    rung's search, written once all have run), which fine-tuning and extraction read as the
    pipeline's stages read the search summary."""

    def __init__(self, root: str, pipeline: Layout):
        super().__init__(root)
        self.pipeline = pipeline

    def stage_dir(self, stage: str) -> str:
        return self.pipeline.stage_dir(stage) if stage == "supernet" else super().stage_dir(stage)

    def output(self, stage: str) -> str:
        if stage == "supernet":
            return self.pipeline.output(stage)
        return os.path.join(self.root, "choice.json") if stage == "search" else super().output(stage)

    def search_done(self) -> str:
        return super().output("search")


def load_ladder(path: str, overrides: Sequence[str] = ()):
    """(PipelineConfig, stage tables, LadderConfig); ``--ladder.key=value`` overrides [ladder]."""
    from compress.common.config import read_toml_document
    ladder_overrides = [item.replace("--ladder.", "--", 1) for item in overrides
                        if item.startswith("--ladder.")]
    rest = [item for item in overrides if not item.startswith("--ladder.")]
    pipe, tables = load_pipeline(path, rest)
    table = read_toml_document(path).get("ladder") or {}
    ladder = config_from_dict(LadderConfig, dict(table), f"{path} [ladder]", ladder_overrides)
    return pipe, tables, ladder


# ----------------------------------------------------------------------------- latency

def latency_setup(search_cfg: Any):
    """(measurer, LUT, search size (H, W), supernet network tag, supernet, its smallest config)
    for the rungs' search settings."""
    from compress.models.search_space import encode_config, load_supernet
    from compress.searching.latency import LatencyLUT, LatencyMeasurer, network_tag
    from compress.searching.run import resolve_space, search_size
    cfg = search_cfg
    supernet, meta = load_supernet(cfg.supernet)
    measure = LatencyMeasurer(cfg.latency_backend, cfg.latency_device, cfg.latency_threads,
                              cfg.latency_warmup, cfg.latency_runs)
    smallest = encode_config(resolve_space(cfg, supernet.family, meta).smallest())
    return (measure, LatencyLUT(cfg.latency_lut), search_size(cfg, meta), network_tag(supernet), supernet,
            smallest)


def generator_latency(model, config: str, network: str, measure, lut, size_hw) -> float:
    """Latency (ms) of ``model`` under the LUT key ``network:config`` (read from the LUT when the
    search, or an earlier ladder run, timed it already)."""
    from compress.searching.latency import cached_latency
    return cached_latency(lut, measure, config, size_hw, lambda: model.eval(), network=network)[0]


def check_reachable(rungs: Sequence[Tuple[str, float]], teacher_ms: float, smallest: str, supernet,
                    timing) -> None:
    """ValueError naming the largest speedup the supernet offers when a rung asks for more."""
    from compress.searching.latency import cached_latency
    measure, lut, size_hw, network = timing
    smallest_ms = cached_latency(lut, measure, smallest, size_hw, lambda: supernet.make_subnet(smallest),
                                 network)[0]
    for name, speedup in rungs:
        if teacher_ms / speedup < smallest_ms:
            raise ValueError(f"rung {name} asks for {speedup:g}x the teacher's speed "
                             f"({teacher_ms / speedup:.2f} ms), but the smallest sub-network {smallest} "
                             f"takes {smallest_ms:.2f} ms, {teacher_ms / smallest_ms:.2f}x; lower its "
                             "speedup in [ladder] rungs")


def busy_cores_warning(threads: Optional[int]) -> str:
    """A warning when other work keeps the cores busy (timings taken now rank configs poorly)."""
    if not hasattr(os, "getloadavg"):
        return ""
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > max(cores - (threads or cores), 0) + 0.5:
        return (f"warning: 1-min load average {load:.1f} on {cores} cores: latencies measured now include "
                "other jobs' interference; time on an idle machine for numbers to ship (the LUT keeps "
                "what is measured: delete it to measure again)")
    return ""


# ----------------------------------------------------------------------------- one rung

# SearchConfig keys that do not change a row's score: rows of searches that differ only in
# these are shared between rungs (latency is dropped from shared rows and re-read from the LUT)
NOT_SCORING = ("output_dir", "device", "cpu_threads", "batch_size", "generations", "latency_lut",
               "latency_warmup", "latency_runs", "latency_backend", "latency_device", "latency_threads",
               "budget_macs", "budget_latency_ms", "min_latency_ms", "strategy", "population",
               "parents_fraction", "mutation_fraction", "mutate_prob", "weighted_sample", "weight_strategy",
               "seed", "num_shards", "shard")


def reusable_rows(search_cfg: Any, folders: Sequence[str]) -> List[Dict[str, Any]]:
    """Scored rows of the searches in ``folders`` whose scoring settings equal ``search_cfg``'s."""
    from compress.common.config import diff_configs, load_config
    from compress.searching.config import SearchConfig
    from compress.searching.results import read_log
    rows: Dict[str, Dict[str, Any]] = {}
    for folder in folders:
        saved, log = os.path.join(folder, "search_config.toml"), os.path.join(folder, "search_log.jsonl")
        if not (os.path.isfile(saved) and os.path.isfile(log)):
            continue
        changed = set(diff_configs(load_config(SearchConfig, saved), search_cfg)) - set(NOT_SCORING)
        if changed:
            continue
        for row in read_log(log):
            rows.setdefault(row["config"], dict(row, latency_ms=None))
    return list(rows.values())


def seed_search_log(search_cfg: Any, folders: Sequence[str], log: Callable[[str], None]) -> int:
    from compress.searching.results import append_row
    path = os.path.join(search_cfg.output_dir, "search_log.jsonl")
    if os.path.exists(path):
        return 0  # a started search resumes from its own log
    rows = reusable_rows(search_cfg, folders)
    for row in rows:
        append_row(path, row)
    if rows:
        log(f"  reusing {len(rows)} scored sub-networks of the earlier searches")
    return len(rows)


def run_rung_stages(run: Sequence[str], stages: Tuple[str, ...], pipe: PipelineConfig,
                    tables: Dict[str, Dict[str, Any]], layout: RungLayout, source: str,
                    search_folders: Sequence[str], reuse: bool, log: Callable[[str], None]) -> None:
    """The stages ``run`` of one rung (``stages``: all of the rung's, for the wiring); finished
    ones are skipped."""
    for stage in run:
        output = layout.search_done() if stage == "search" else layout.output(stage)
        if os.path.exists(output):
            log(f"  [{stage}] done earlier: {output}")
            continue
        values = stage_settings(stage, pipe, tables[stage], layout, stages, source)
        cfg = stage_config(stage, values, f"{source} [{stage}]")
        write_stage_toml(layout.config_file(stage), stage, values)
        log(f"  [{stage}] running (settings: {layout.config_file(stage)})")
        if stage == "search" and reuse:
            seed_search_log(cfg, search_folders, log)
        run_stage(stage, cfg, force=False)
        if not os.path.exists(output):
            raise ValueError(f"the {stage} stage of {layout.root} finished without writing {output}; "
                             "rerun to resume it")


def stamp_rung(model, meta: Dict[str, Any], target: str, name: str, latency_ms: float, teacher_ms: float,
               setting: Dict[str, Any]) -> Dict[str, Any]:
    """Save ``model`` to ``target`` with its metadata plus the rung's; returns that metadata."""
    from compress.models.checkpoints import save_generator
    meta = dict(meta, rung=name, latency_ms=round(latency_ms, 3), teacher_latency_ms=round(teacher_ms, 3),
                speedup=round(teacher_ms / latency_ms, 2), latency_setting=setting)
    save_generator(model, target, meta, overwrite=True)  # the ladder's own output, rewritten each run
    return meta


# ----------------------------------------------------------------------------- the ladder

def population(folders: Sequence[str], measure, lut, size_hw, network: str,
               supernet=None) -> List[Dict[str, Any]]:
    """Every scored sub-network of the searches in ``folders``, with its latency from the LUT
    where the row has none (scored by a search without a latency budget); with ``supernet``,
    the rows the LUT does not know are timed now (and remembered there)."""
    from tqdm import tqdm

    from compress.searching.latency import cached_latency
    from compress.searching.results import merge_rows, read_log
    setting = measure.describe()
    rows = []
    for folder in folders:
        for row in read_log(os.path.join(folder, "search_log.jsonl")):
            if row.get("latency_ms") is None:
                row = dict(row, latency_ms=lut.get(lut.key(row["config"], size_hw, setting, network)))
            rows.append(row)
    rows = merge_rows([sorted(rows, key=lambda r: r.get("latency_ms") is None)])  # timed rows first
    untimed = [row for row in rows if row.get("latency_ms") is None]
    if supernet is not None and untimed:
        for row in tqdm(untimed, desc="timing the population", unit="config"):
            row["latency_ms"] = cached_latency(lut, measure, row["config"], size_hw,
                                               lambda config=row["config"]: supernet.make_subnet(config),
                                               network)[0]
    return rows


def run_ladder(path: str, overrides: Sequence[str] = (),
               log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Build (or resume) the rungs of the pipeline TOML at ``path``; returns the summary (also
    written to ``<output_dir>/ladder/ladder.json``)."""
    pipe, tables, ladder = load_ladder(path, overrides)
    main_layout = Layout(pipe.output_dir)
    if not os.path.isfile(main_layout.output("supernet")):
        raise ValueError(f"{main_layout.output('supernet')} is missing: train the supernet first "
                         f"(python -m compress.pipeline {path})")
    root = os.path.join(pipe.output_dir, "ladder")
    finetune = ladder.finetune if ladder.finetune is not None else "finetune" in pipe.stages()
    stages = ("supernet", "search") + (("finetune",) if finetune else ()) + ("extract",)
    tables = dict(tables, search=dict(tables["search"], latency_lut=tables["search"].get("latency_lut")
                                      or os.path.join(root, "latency_lut.json")))
    probe = dataclasses.replace(pipe, budget_macs=None, budget_latency_ms=1.0)  # any budget: only timing keys
    search_cfg = stage_config("search", stage_settings("search", probe, tables["search"],
                                                       RungLayout(root, main_layout), stages, path), path)
    default = default_student(ladder, main_layout, search_cfg.metric)  # a bad file fails before any timing
    measure, lut, size_hw, network, supernet, smallest = latency_setup(search_cfg)
    setting = measure.describe()
    load = busy_cores_warning(setting.get("threads"))
    if load:
        log(load)
    from compress.models.checkpoints import load_generator
    from compress.searching.latency import network_tag, remeasured_latency
    teacher = load_generator(pipe.teacher)[0]
    teacher_ms = generator_latency(teacher, TEACHER_KEY, network_tag(teacher), measure, lut, size_hw)
    check_reachable(ladder.parsed_rungs(), teacher_ms, smallest, supernet, (measure, lut, size_hw, network))
    log(f"teacher {pipe.teacher}: {teacher_ms:.2f} ms at {size_hw[0]}x{size_hw[1]} "
        f"({setting['backend']}, {setting['device']}, {setting['threads']} thread(s))")
    timing = (measure, lut, size_hw, network)

    def remeasure(config: str) -> float:  # a chosen config timed again: the median of all its timings
        return remeasured_latency(measure, lut, config, size_hw, lambda: supernet.make_subnet(config),
                                  network, ladder.confirm_runs)
    confirm = remeasure if ladder.confirm_runs > 0 else None
    folders, plans, rungs = [main_layout.stage_dir("search")], [], []
    for name, speedup, most in ladder.rung_specs():  # every rung's search first ...
        layout = RungLayout(os.path.join(root, name), main_layout)
        budget_ms = teacher_ms / speedup
        log(f"[rung {name}] at least {speedup:g}x faster than the teacher: latency budget {budget_ms:.2f} ms")
        rung_pipe = dataclasses.replace(pipe, budget_macs=None, budget_latency_ms=budget_ms)
        floor_ms = teacher_ms / most if most else 0.0  # a range rung searches inside its window
        rung_tables = dict(tables, search=dict(tables["search"], min_latency_ms=floor_ms or None))
        run_rung_stages(("search",), stages, rung_pipe, rung_tables, layout, path, folders, ladder.reuse_rows,
                        log)
        folders.append(layout.stage_dir("search"))
        plans.append((name, speedup, layout, rung_pipe, floor_ms))
    pooled = population(folders, *timing, supernet=supernet if ladder.time_population else None)
    for name, speedup, layout, rung_pipe, floor_ms in plans:  # ... then each rung's choice from all rows
        best = choose_rung(layout, pooled, rung_pipe.budget_latency_ms, log, floor_ms, confirm)
        log(f"[rung {name}] {best['config']}: {best['latency_ms']:.2f} ms, "
            f"{best['metric']} {best['value']:.4g}")
        run_rung_stages(stages[2:], stages, rung_pipe, tables, layout, path, folders, ladder.reuse_rows, log)
        rungs.append(_finish(name, layout.output("extract"), best, speedup, root, teacher_ms, setting,
                             timing))
    if default is not None:
        if confirm is not None:  # its stamped latency as careful as the rungs'
            confirm(default[1]["config"])
        rungs.append(_finish(ladder.default_rung, default[0], default[1], None, root, teacher_ms, setting,
                             timing))
    return _write_outputs(root, pipe, rungs, pooled, teacher_ms, setting, log)


def choose_rung(layout: RungLayout, pooled: Sequence[Dict[str, Any]], budget_ms: float,
                log: Callable[[str], None], floor_ms: float = 0.0,
                confirm: Optional[Callable[[str], float]] = None) -> Dict[str, Any]:
    """The rung's config: the best timed row within its budget (and no faster than ``floor_ms``)
    among all the rungs' searches (an evolution under one budget may miss what another found),
    fixed in ``choice.json`` the first time, so that a resumed fine-tuning keeps its config.
    With ``confirm`` (config -> a more careful latency), the best row is re-timed, and the choice
    repeated until the best row's latency is a confirmed one."""
    from compress.common.atomic import atomic_write_text
    from compress.searching.results import select_best, within_latency
    path = layout.output("search")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)["best"]
    confirmed: Dict[str, float] = {}
    while True:
        window = [row for row in pooled if within_latency(row.get("latency_ms"), budget_ms, floor_ms)]
        if not window:
            raise ValueError(f"no timed sub-network of {layout.root} lies between {floor_ms:.2f} and "
                             f"{budget_ms:.2f} ms: widen the rung's speedup range or search longer "
                             "(--search.generations)")
        best = select_best(window)
        if confirm is None or best["config"] in confirmed:
            break
        first = best["latency_ms"]
        confirmed[best["config"]] = best["latency_ms"] = confirm(best["config"])  # updates the pooled row
        log(f"  re-timed {best['config']}: {first:.2f} -> {best['latency_ms']:.2f} ms (median)")
    own = read_summary_best(layout.search_done())
    if own["config"] != best["config"]:
        where = "within this speedup range" if floor_ms else "found by another search within this budget"
        log(f"  the best config {where}: {best['config']} ({best['value']:.4g}), not its own "
            f"search's best {own['config']} ({own['value']:.4g})")
    choice = {"best": best, "budget_latency_ms": budget_ms, "floor_latency_ms": floor_ms,
              "own_search_best": own, "pooled_rows": len(pooled), "confirmed_ms": confirmed}
    atomic_write_text(path, json.dumps(choice, indent=1, sort_keys=True) + "\n", overwrite=True)
    return best


def default_student(ladder: LadderConfig, layout: Layout,
                    metric: str) -> Optional[Tuple[str, Dict[str, Any]]]:
    """(checkpoint, search row) of the default rung, or None: the pipeline's own student with its
    search score once extracted, else ``default_student`` (no score: it was not searched here)."""
    if not ladder.default_rung:
        return None
    if not ladder.default_student:
        source = layout.output("extract")
        return (source, read_summary_best(layout.output("search"))) if os.path.isfile(source) else None
    from compress.models.checkpoints import load_generator
    if not os.path.isfile(ladder.default_student):
        raise ValueError(f"default_student {ladder.default_student} is missing: give a generator checkpoint "
                         "(.safetensors), or leave the key empty for the pipeline's own student")
    config = load_generator(ladder.default_student)[1].get("config")
    if not config:
        raise ValueError(f"default_student {ladder.default_student} names no sub-network config in its "
                         "metadata: the ladder's rungs are sub-networks "
                         "(compress.extract or compress.distill)")
    return ladder.default_student, {"config": config, "metric": metric, "value": None}


def read_summary_best(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)["best"]


def _finish(name: str, source: str, best: Dict[str, Any], speedup_target: Optional[float], root: str,
            teacher_ms: float, setting: Dict[str, Any], timing) -> Dict[str, Any]:
    from compress.models.checkpoints import load_generator
    model, meta = load_generator(source)  # once: timed (unless the LUT knows it) and stamped
    latency_ms = generator_latency(model, best["config"], timing[3], *timing[:3])
    target = os.path.join(root, f"{name}.safetensors")
    meta = stamp_rung(model, meta, target, name, latency_ms, teacher_ms, setting)
    return {"name": name, "path": target, "source": source, "config": best["config"],
            "speedup_target": speedup_target, "macs": meta["macs"], "params": meta["params"],
            "latency_ms": latency_ms, "speedup": teacher_ms / latency_ms, "metric": best["metric"],
            "value": best["value"], "validation": meta.get("validation") or {}}


def write_ladder_plot(path: str, rows: Sequence[Dict[str, Any]], rungs: Sequence[Dict[str, Any]],
                      teacher_ms: float, title: str) -> Dict[str, int]:
    """The population's mIoU against latency with each rung marked (a rung without a score, e.g.
    a default student trained elsewhere, as a dotted line at its latency)."""
    from compress.searching.plot import write_population_plot
    marked = {r["name"]: {"config": r["config"], "value": r["value"], "latency_ms": r["latency_ms"]}
              for r in rungs}
    return write_population_plot(path, rows, "latency_ms", marked, ("teacher", teacher_ms), title=title)


def _write_outputs(root: str, pipe: PipelineConfig, rungs: List[Dict[str, Any]], rows: List[Dict[str, Any]],
                   teacher_ms: float, setting: Dict[str, Any], log: Callable[[str], None]) -> Dict[str, Any]:
    from compress.common.atomic import atomic_write_text
    from compress.searching.results import write_table
    rungs = sorted(rungs, key=lambda r: r["latency_ms"], reverse=True)  # slowest (best) first
    by_config: Dict[str, List[str]] = {}
    for rung in rungs:
        by_config.setdefault(rung["config"], []).append(rung["name"])
    for config, names in by_config.items():
        if len(names) > 1:
            log(f"warning: rungs {' and '.join(names)} are the same sub-network {config}: their budgets "
                "found nothing better apart; spread the speedups or search longer (more generations)")
    write_table(os.path.join(root, "population.json"), rows)
    plot = os.path.join(root, "quality_vs_latency.png")
    counts = write_ladder_plot(plot, rows, rungs, teacher_ms, f"the sub-networks scored in {pipe.output_dir}")
    summary = {"teacher": pipe.teacher, "teacher_latency_ms": teacher_ms, "latency_setting": setting,
               "rungs": rungs, "population": os.path.join(root, "population.json"), "plot": plot,
               "plotted": counts["plotted"]}
    atomic_write_text(os.path.join(root, "ladder.json"), json.dumps(summary, indent=1, sort_keys=True) + "\n",
                      overwrite=True)
    log(format_ladder(summary))
    return summary


def format_ladder(summary: Dict[str, Any]) -> str:
    from compress.models.profile import human
    lines = [f"compute ladder (teacher {summary['teacher_latency_ms']:.2f} ms):",
             f"  {'rung':<10} {'config':<26} {'MACs':>7} {'latency':>10} {'speedup':>8}  search metric"]
    for rung in summary["rungs"]:
        lines.append(f"  {rung['name']:<10} {rung['config']:<26} {human(rung['macs']):>7} "
                     f"{rung['latency_ms']:>7.2f} ms {rung['speedup']:>7.2f}x  {rung['metric']} "
                     + ("- (not searched here)" if rung["value"] is None else f"{rung['value']:.4g}"))
    lines.append(f"  rungs: {os.path.dirname(summary['plot'])}/<rung>.safetensors; plot: {summary['plot']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python -m compress.ladder configs/facades_cutmix_compress.toml
  python -m compress.ladder configs/facades_cutmix_compress.toml --ladder.rungs=quality:3.5,fast:9
  python -m compress.ladder configs/facades_cutmix_compress.toml --search.latency_threads=2

Run the pipeline of the same TOML first: the rungs are searched in its supernet. Settings:
--ladder.key=value for the [ladder] table, --STAGE.key=value for a stage table, --key=value for
[pipeline]. Then export each rung (export.onnx keeps the rung metadata), e.g.
  python -m export.onnx runs/x/ladder/fast.safetensors -o assets/models/facades/ladder/fast.onnx \\
      --output-conv s2d --check

[ladder] keys:
"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = command_parser(
        "python -m compress.ladder",
        "Build a compute ladder: students of a trained supernet, each the best under a measured-"
        "latency budget (a speedup over the teacher), fine-tuned and extracted with their latency.",
        EXAMPLES + describe_config(LadderConfig))
    parser.add_argument("config", help="pipeline TOML (configs/*_compress.toml), optionally with [ladder]")
    args, overrides = parse_command(parser, argv)

    return run_command(lambda: exit_code_of_stages(lambda: run_ladder(args.config, overrides)),
                       "interrupted: rerun the same command to resume")


if __name__ == "__main__":
    sys.exit(main())
