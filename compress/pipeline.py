"""Run the whole GAN Compression pipeline from one TOML file, stage by stage, resumably.

    python -m compress.pipeline configs/facades_compress.toml
    python -m compress.pipeline configs/facades_compress.toml --redo=search     (search again, then on)

Flows (``flow`` in the ``[pipeline]`` table):
  fast      supernet -> search -> finetune (optional, ``finetune = true``) -> extract
            (Fast GAN Compression: the supernet learns from the full teacher directly)
  original  distill -> supernet -> search -> finetune -> extract
            (CVPR'20: a mobile teacher is pruned and distilled into a fixed student first, and
            that student initialises the supernet)

The TOML has a ``[pipeline]`` table (`PipelineConfig`: flow, output_dir, teacher, budget, and
dataset keys shared by every stage that has them) and one table per stage (``[distill]``,
``[supernet]``, ``[search]``, ``[finetune]``, ``[extract]``) whose keys are that stage's own
settings (`compress.supernet.SupernetConfig`, `compress.search.SearchConfig`, ...). A key set in a
stage table wins over the shared one. The pipeline wires the stages together itself (each
stage's output_dir under the pipeline's, the teacher, the supernet path, the chosen config), so
those keys are not written in the stage tables.

Each stage's merged table is checked by `compress.common.config.config_from_dict` exactly like the
stage's own TOML file and written to ``<output_dir>/configs/<stage>.toml`` (``python -m
compress.<stage> <output_dir>/configs/<stage>.toml`` repeats that stage alone). `STAGES` is the one
table of the stages: settings class, run function, output file and how the pipeline wires it.
A stage whose output exists is skipped; an interrupted one resumes (the stages resume
themselves). The end prints a summary (chosen config, MACs vs the teacher, the search metric)
and writes ``<output_dir>/summary.json``; the compressed generator is
``<output_dir>/compressed.safetensors``.
"""
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import (check_ranges, config_from_dict, describe_config, load_config, option,
                                    read_toml_document, toml_value)

FLOWS = {"fast": ("supernet", "search", "finetune", "extract"),
         "original": ("distill", "supernet", "search", "finetune", "extract")}


@dataclass
class PipelineConfig:
    flow: str = option("fast", "fast (supernet -> search -> [finetune] -> extract) | original "
                               "(distill -> supernet -> search -> finetune -> extract)")
    output_dir: str = option("runs/compress", "pipeline folder: one sub-folder per stage, "
                                              "compressed.safetensors, summary.json")
    teacher: str = option("", "teacher checkpoint (fast: the full model of compress.train; original: "
                              "the mobile_resnet_9blocks / mobile_spade teacher)")
    finetune: Optional[bool] = option(None, "fine-tune the chosen sub-network (default: true for the "
                                            "original flow, false for the fast flow)")
    budget_macs: Optional[float] = option(None, "search budget: MACs at the search size")
    budget_latency_ms: Optional[float] = option(None, "search budget: measured latency (ms)")
    # --- dataset keys shared by every stage that has them (see compress.distillation.stage_config)
    dataroot: Optional[str] = option(None, "dataset folder")
    dataset_mode: Optional[str] = option(None, "labelmap | aligned | unaligned | cityscapes")
    direction: Optional[str] = option(None, "AtoB | BtoA")
    palette: Optional[str] = option(None, "label palette (assets/palettes)")
    input_encoding: Optional[str] = option(None, "color | onehot (SPADE)")
    instance_edges: Optional[bool] = option(None, "cityscapes + onehot: instance-boundary channel")
    load_size: Optional[int] = option(None, "training resize width")
    crop_size: Optional[int] = option(None, "training crop width = evaluation / search width")
    aspect_ratio: Optional[float] = option(None, "width / height")
    flip: Optional[bool] = option(None, "random horizontal flips in training")
    max_items: Optional[int] = option(None, "use only the first N training items (smoke runs)")
    val_split: Optional[str] = option(None, "validation split folder")
    holdout_items: Optional[int] = option(None, "training items held out for the search (train2)")
    holdout_seed: Optional[int] = option(None, "seed of the held-out split")
    calibration_images: Optional[int] = option(None, "SPADE: batch-norm re-calibration images")
    segmenter: Optional[str] = option(None, "segmenter checkpoint (mIoU)")
    input_kind: Optional[str] = option(None, "label | sketch | image (exported metadata)")
    device: Optional[str] = option(None, "auto | cpu | cuda")
    cpu_threads: Optional[int] = option(None, "intra-op CPU threads")

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.flow not in FLOWS:
            raise ValueError(f"flow = {self.flow!r}: choose one of {', '.join(FLOWS)}")
        if not self.teacher:
            raise ValueError("[pipeline] teacher is not set: give the teacher checkpoint "
                             "(teacher = \"runs/.../G_best.safetensors\")")

    def stages(self) -> Tuple[str, ...]:
        wanted = self.finetune if self.finetune is not None else self.flow == "original"
        return tuple(s for s in FLOWS[self.flow] if s != "finetune" or wanted)


SHARED_KEYS = tuple(f.name for f in dataclasses.fields(PipelineConfig)
                    if f.name not in ("flow", "output_dir", "teacher", "finetune", "budget_macs",
                                      "budget_latency_ms"))


# ----------------------------------------------------------------------------- the stages

class Layout:
    """Where each stage writes, under the pipeline's output_dir."""

    def __init__(self, root: str):
        self.root = root

    def stage_dir(self, stage: str) -> str:
        return os.path.join(self.root, stage)

    def config_file(self, stage: str) -> str:
        return os.path.join(self.root, "configs", f"{stage}.toml")

    def output(self, stage: str) -> str:
        """The file whose existence marks ``stage`` as done."""
        if stage == "extract":
            return os.path.join(self.root, STAGES[stage].output)
        return os.path.join(self.stage_dir(stage), STAGES[stage].output)


# Each stage's command module is imported when the stage is used, not when the pipeline is.
def _distill() -> Tuple[type, Callable[[Any, bool], int]]:
    from compress.distill import DistillConfig, distill
    return DistillConfig, distill


def _supernet() -> Tuple[type, Callable[[Any, bool], int]]:
    from compress.supernet import SupernetConfig, train_supernet
    return SupernetConfig, train_supernet


def _search() -> Tuple[type, Callable[[Any, bool], int]]:
    from compress.search import SearchConfig, run_search

    def run(cfg: Any, force: bool) -> int:
        run_search(cfg, force=force)
        return 0
    return SearchConfig, run


def _finetune() -> Tuple[type, Callable[[Any, bool], int]]:
    from compress.finetune import FinetuneConfig, finetune
    return FinetuneConfig, finetune


def _extract() -> Tuple[type, Callable[[Any, bool], int]]:
    from compress.extract import ExtractConfig, extract
    return ExtractConfig, lambda cfg, force: extract(cfg, force=True)  # the pipeline owns its output


def _wire_distill(pipe: "PipelineConfig", layout: Layout, stages: Tuple[str, ...]) -> Dict[str, Any]:
    return {"teacher": pipe.teacher, "output_dir": layout.stage_dir("distill")}


def _wire_supernet(pipe: "PipelineConfig", layout: Layout, stages: Tuple[str, ...]) -> Dict[str, Any]:
    wired = {"teacher": pipe.teacher, "output_dir": layout.stage_dir("supernet")}
    if "distill" in stages:  # the original flow: the distilled student initialises the supernet
        wired["init_student"] = layout.output("distill")
    return wired


def _wire_search(pipe: "PipelineConfig", layout: Layout, stages: Tuple[str, ...]) -> Dict[str, Any]:
    return {"supernet": layout.output("supernet"), "output_dir": layout.stage_dir("search"),
            "teacher": pipe.teacher}


def _wire_finetune(pipe: "PipelineConfig", layout: Layout, stages: Tuple[str, ...]) -> Dict[str, Any]:
    wired = {"teacher": pipe.teacher, "supernet": layout.output("supernet"), "config": chosen_config(layout),
             "output_dir": layout.stage_dir("finetune")}
    for key, name in (("restore_D", "discriminator.safetensors"), ("restore_A", "adaptors.safetensors")):
        path = os.path.join(layout.stage_dir("supernet"), name)
        if os.path.isfile(path):  # continue the supernet's discriminator and adaptors (upstream)
            wired[key] = path
    return wired


def _wire_extract(pipe: "PipelineConfig", layout: Layout, stages: Tuple[str, ...]) -> Dict[str, Any]:
    source = layout.output("finetune") if "finetune" in stages else layout.output("supernet")
    return {"teacher": pipe.teacher, "supernet": source, "config": chosen_config(layout),
            "output": layout.output("extract")}


class Stage(NamedTuple):
    load: Callable[[], Tuple[type, Callable[[Any, bool], int]]]  # -> (settings class, run(cfg, force))
    output: str  # the file marking the stage done (extract's sits in output_dir, others in <stage>/)
    wire: Callable[["PipelineConfig", Layout, Tuple[str, ...]], Dict[str, Any]]  # keys set by the pipeline


STAGES: Dict[str, Stage] = {
    "distill": Stage(_distill, "student.safetensors", _wire_distill),
    "supernet": Stage(_supernet, "supernet.safetensors", _wire_supernet),
    "search": Stage(_search, "search_summary.json", _wire_search),
    "finetune": Stage(_finetune, "finetuned.safetensors", _wire_finetune),
    "extract": Stage(_extract, "compressed.safetensors", _wire_extract),
}


def stage_config_class(stage: str) -> type:
    return STAGES[stage].load()[0]


def chosen_config(layout: Layout) -> str:
    path = layout.output("search")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: the search stage has not finished")
    with open(path, encoding="utf-8") as handle:
        return str(json.load(handle)["best"]["config"])


def write_stage_toml(path: str, stage: str, values: Dict[str, Any]) -> None:
    from compress.common.atomic import atomic_write_text
    lines = [f"# settings of the {stage} stage, written by python -m compress.pipeline;",
             f"# python -m compress.{stage} {path} runs this stage alone"]
    lines += [f"{key} = {toml_value(value)}" for key, value in values.items() if value is not None]
    atomic_write_text(path, "\n".join(lines) + "\n", overwrite=True)


def stage_config(stage: str, values: Dict[str, Any], source: str) -> Any:
    """The stage's settings object from merged values (None = unset, as TOML has no null)."""
    return config_from_dict(stage_config_class(stage), {k: v for k, v in values.items() if v is not None},
                            source)


def stage_settings(stage: str, pipe: PipelineConfig, table: Dict[str, Any], layout: Layout,
                   stages: Tuple[str, ...], source: str) -> Dict[str, Any]:
    """Shared keys (those the stage has), then the stage table, then the wiring."""
    fields = {f.name for f in dataclasses.fields(stage_config_class(stage))}
    values: Dict[str, Any] = {}
    for key in SHARED_KEYS:
        if key in fields and getattr(pipe, key) is not None:
            values[key] = getattr(pipe, key)
    if stage == "search":
        for key in ("budget_macs", "budget_latency_ms"):
            if getattr(pipe, key) is not None:
                values[key] = getattr(pipe, key)
    wired = STAGES[stage].wire(pipe, layout, stages)
    clashes = sorted(set(table) & set(wired))
    if clashes:
        raise ValueError(f"{source}: [{stage}] sets {', '.join(clashes)}, which the pipeline wires itself "
                         "(teacher in [pipeline]; output folders under [pipeline] output_dir); remove them")
    values.update(table)
    values.update(wired)
    return values


def run_stage(stage: str, cfg: Any, force: bool) -> None:
    """Run one stage in this process (``force``: start it over); StageStopped on a non-zero exit."""
    code = STAGES[stage].load()[1](cfg, force)
    if code != 0:
        raise StageStopped(stage, code)


class StageStopped(Exception):
    def __init__(self, stage: str, code: int):
        super().__init__(f"the {stage} stage stopped (exit code {code}); rerun the pipeline to resume it")
        self.stage, self.code = stage, code


# ----------------------------------------------------------------------------- the pipeline

def split_stage_overrides(overrides: Sequence[str]) -> Tuple[List[str], Dict[str, Dict[str, Any]]]:
    """``--stage.key=value`` items -> {stage: {key: typed value}}; the rest ([pipeline] keys) as is.
    The value is converted to the stage config's declared type, so a typo fails before any stage runs."""
    from compress.common.config import convert_value, field_types, parse_overrides
    plain: List[str] = []
    staged: Dict[str, Dict[str, Any]] = {}
    for item in overrides:
        head = item[2:].partition("=")[0] if item.startswith("--") else ""
        if "." not in head:
            plain.append(item)
            continue
        stage, _, key = head.partition(".")
        if stage not in STAGES:
            raise ValueError(f"{item}: unknown stage {stage!r}; stage settings are --STAGE.key=value "
                             f"with STAGE one of {', '.join(STAGES)}")
        types = field_types(stage_config_class(stage))
        rest = "--" + key + item[2 + len(head):]
        try:
            ((name, text),) = parse_overrides([rest], types)
            staged.setdefault(stage, {})[name] = convert_value(text, types[name], from_text=True)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{item}: {error}".replace("command line: ", f"[{stage}] ")) from None
    return plain, staged


def load_pipeline(path: str, overrides: List[str] = ()) -> Tuple[PipelineConfig, Dict[str, Dict[str, Any]]]:
    """(PipelineConfig, {stage: table}) from a pipeline TOML; ``overrides`` set [pipeline] keys
    (``--key=value``) and stage keys (``--stage.key=value``, which win over the stage's table)."""
    overrides, staged = split_stage_overrides(overrides)
    data = _read_tables(path)
    unknown = sorted(set(data) - {"pipeline", "ladder", *STAGES})  # [ladder]: python -m compress.ladder
    if unknown:
        raise ValueError(f"{path}: unknown table(s) [{'], ['.join(unknown)}]; valid: [pipeline], "
                         + ", ".join(f"[{s}]" for s in STAGES) + ", [ladder]")
    pipeline_table = data.get("pipeline")
    if not isinstance(pipeline_table, dict):
        raise ValueError(f"{path}: no [pipeline] table (flow, output_dir, teacher, ...)")
    # the [pipeline] table is checked like any stage's settings (same checks, same errors)
    pipe = config_from_dict(PipelineConfig, pipeline_table, f"{path} [pipeline]", overrides)
    tables = {stage: {**dict(data.get(stage) or {}), **staged.get(stage, {})} for stage in STAGES}
    return pipe, tables


def _read_tables(path: str) -> Dict[str, Any]:
    """The raw tables of a pipeline TOML (read_toml insists on flat files, so read it here)."""
    data = read_toml_document(path, "see configs/*_compress.toml")
    flat = [k for k, v in data.items() if not isinstance(v, dict)]
    if flat:
        raise ValueError(f"{path}: {flat[0]} is outside any table; pipeline settings go in [pipeline], "
                         "stage settings in [supernet], [search], ...")
    return data


def run_pipeline(path: str, overrides: List[str] = (), force: bool = False, redo: Optional[str] = None,
                 configs_only: bool = False, log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the pipeline of the TOML at ``path``; returns the summary (also in summary.json).
    ``configs_only``: write the settings files of the stages still to run and stop (to start a
    stage by hand, e.g. under torchrun); returns {"configs": [paths]}."""
    pipe, tables = load_pipeline(path, overrides)
    stages = pipe.stages()
    for stage in STAGES:
        if tables[stage] and stage not in stages:
            log(f"note: [{stage}] is ignored: the {pipe.flow} flow"
                + (" without fine-tuning" if stage == "finetune" else "") + f" runs {' -> '.join(stages)}")
    if redo is not None and redo not in stages:
        raise ValueError(f"--redo={redo}: this pipeline runs {', '.join(stages)}")
    layout = Layout(pipe.output_dir)
    os.makedirs(pipe.output_dir, exist_ok=True)
    if not os.path.isfile(pipe.teacher):
        raise ValueError(f"{pipe.teacher}: teacher checkpoint not found (train one with "
                         "python -m compress.train)")
    redo_from = stages.index(redo) if redo is not None else (0 if force else None)
    report: Dict[str, Dict[str, Any]] = {}
    written: List[str] = []
    for index, stage in enumerate(stages):
        again = redo_from is not None and index >= redo_from
        output = layout.output(stage)
        if os.path.exists(output) and not again:
            log(f"[{stage}] done earlier: {output}")
            changed = changed_settings(stage, pipe, tables[stage], layout, stages, path)
            if changed:
                log(f"note: [{stage}] settings changed since it ran ({changed}); "
                    f"--redo={stage} applies them")
            report[stage] = {"status": "skipped", "output": output}
            continue
        if configs_only and stage in ("finetune", "extract") and not os.path.exists(layout.output("search")):
            log(f"[{stage}] needs the search result; its settings are written once the search has run")
            break
        values = stage_settings(stage, pipe, tables[stage], layout, stages, path)
        config_file = layout.config_file(stage)
        cfg = stage_config(stage, values, f"{path} [{stage}]")  # checked before anything is written
        write_stage_toml(config_file, stage, values)
        if configs_only:
            log(f"[{stage}] settings: {config_file} (python -m compress.{stage} {config_file})")
            written.append(config_file)
            continue
        log(f"[{stage}] running (settings: {config_file})")
        start = time.perf_counter()
        run_stage(stage, cfg, force=again)
        if not os.path.exists(output):
            raise ValueError(f"the {stage} stage finished without writing {output} (max_steps reached? "
                             "rerun the pipeline to resume it)")
        report[stage] = {"status": "ran", "output": output, "seconds": round(time.perf_counter() - start, 1)}
    if configs_only:
        return {"configs": written}
    summary = summarize(pipe, layout, stages, report)
    from compress.common.atomic import atomic_write_text
    atomic_write_text(os.path.join(pipe.output_dir, "summary.json"),
                      json.dumps(summary, indent=1, sort_keys=True) + "\n", overwrite=True)
    log(format_summary(summary))
    return summary


def changed_settings(stage: str, pipe: PipelineConfig, table: Dict[str, Any], layout: Layout,
                     stages: Tuple[str, ...], source: str) -> str:
    """What differs between the settings a finished stage ran with and the current ones ("" if
    nothing, or when they cannot be compared)."""
    from compress.common.config import diff_configs
    previous = layout.config_file(stage)
    if not os.path.isfile(previous):
        return ""
    cls = stage_config_class(stage)
    try:
        current = stage_config(stage, stage_settings(stage, pipe, table, layout, stages, source), source)
        diff = diff_configs(load_config(cls, previous), current)
    except ValueError:
        return ""
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))


def summarize(pipe: PipelineConfig, layout: Layout, stages: Tuple[str, ...],
              report: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Chosen config, MACs and params vs the teacher (at the compressed model's resolution), the
    search metric and the extract stage's validation scores."""
    from compress.models.checkpoints import load_generator
    from compress.models.profile import count_macs
    with open(layout.output("search"), encoding="utf-8") as handle:
        search = json.load(handle)
    compressed, meta = load_generator(layout.output("extract"))
    del compressed
    height, width = meta["resolution"]
    teacher, teacher_meta = load_generator(pipe.teacher)
    if list(teacher_meta.get("resolution") or []) == [height, width] and teacher_meta.get("macs"):
        teacher_counts = {k: teacher_meta[k] for k in ("macs", "true_macs", "params")}
    else:
        teacher_counts = count_macs(teacher, (1, teacher.input_nc, height, width))
    best = search["best"]
    return {
        "flow": pipe.flow, "stages": report, "compressed": layout.output("extract"),
        "config": meta.get("config"), "arch": meta.get("arch"), "resolution": [height, width],
        "macs": meta["macs"], "true_macs": meta.get("true_macs"), "params": meta["params"],
        "teacher": pipe.teacher, "teacher_macs": teacher_counts["macs"],
        "teacher_params": teacher_counts["params"],
        "macs_reduction": teacher_counts["macs"] / meta["macs"],
        "params_reduction": teacher_counts["params"] / meta["params"],
        "budget_macs": search.get("budget_macs"), "budget_latency_ms": search.get("budget_latency_ms"),
        "search": {"metric": best["metric"], "value": best["value"], "latency_ms": best.get("latency_ms"),
                   "evaluated": search.get("evaluated"), "strategy": search.get("strategy"),
                   "results": search.get("results")},
        "validation": meta.get("validation") or {},
    }


def format_summary(summary: Dict[str, Any]) -> str:
    from compress.models.profile import human
    search = summary["search"]
    lines = [f"compressed generator: {summary['compressed']}",
             f"  config {summary['config']} ({summary['arch']}) at {summary['resolution'][0]}x"
             f"{summary['resolution'][1]}",
             f"  MACs {human(summary['macs'])} vs teacher {human(summary['teacher_macs'])} "
             f"({summary['macs_reduction']:.1f}x fewer); params {human(summary['params'])} vs "
             f"{human(summary['teacher_params'])} ({summary['params_reduction']:.1f}x fewer)",
             f"  search: {search['metric']} {search['value']:.4g} on held-out training images "
             f"({search['evaluated']} configs evaluated, {search['strategy']})"]
    if search.get("latency_ms") is not None:
        lines.append(f"  measured latency {search['latency_ms']:.2f} ms")
    if summary["validation"]:
        lines.append("  validation: " + ", ".join(f"{k} {v:.4g}" for k, v in summary["validation"].items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python -m compress.pipeline configs/facades_compress.toml
  python -m compress.pipeline configs/facades_compress.toml --redo=search
  python -m compress.pipeline configs/edges2shoes_compress.toml --dataroot=/data/edges2shoes-r
  python -m compress.pipeline configs/facades_compress.toml --device=cuda --search.population=100

A finished stage is skipped (its output exists); an interrupted one resumes. --redo=STAGE runs
that stage and every later one again; --force reruns them all. Other --key=value settings
override keys of the [pipeline] table; --STAGE.key=value overrides a key of a stage's table
(e.g. --supernet.nepochs=10 --extract.eval_metric=none). docs/compress.md walks through a whole run.

[pipeline] keys:
"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = command_parser(
        "python -m compress.pipeline",
        "Compress a teacher generator end to end (GAN Compression / Fast GAN Compression): "
        "supernet, search, fine-tuning and extraction from one TOML file.",
        EXAMPLES + describe_config(PipelineConfig))
    parser.add_argument("config", help="pipeline TOML (configs/*_compress.toml)")
    parser.add_argument("--force", action="store_true", help="rerun every stage from scratch")
    parser.add_argument("--redo", choices=tuple(STAGES), help="rerun this stage and the later ones")
    parser.add_argument("--configs-only", action="store_true",
                        help="only write <output_dir>/configs/<stage>.toml of the stages still to run "
                             "(to run a stage by hand, e.g. under torchrun), then stop")
    args, overrides = parse_command(parser, argv)

    return run_command(lambda: exit_code_of_stages(lambda: run_pipeline(
        args.config, overrides, force=args.force, redo=args.redo, configs_only=args.configs_only)),
        "interrupted: rerun the same command to resume")


def exit_code_of_stages(run: Callable[[], Any]) -> int:
    """0 once ``run()`` returns; when a stage stops early, its exit code (1 if it gave none),
    reported on stderr with how to resume."""
    try:
        run()
    except StageStopped as stopped:
        print(f"stopped: {stopped}", file=sys.stderr)
        return stopped.code if stopped.code else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
