"""Search the sub-networks of a trained once-for-all supernet for the best one under a budget.

    python -m compress.search runs/facades_compress/configs/search.toml   (written by the pipeline)
    python -m compress.search SEARCH.toml --strategy=exhaustive --num_shards=4 --shard=0   (one of 4)
    python -m compress.search merge runs/x/search_results.json runs/x/search_results.shard*.json
    python -m compress.search select runs/x/search_results.json --macs 5.7e9

A search config is a flat TOML of `SearchConfig` keys (the ``[search]`` table of a pipeline
config plus the keys the pipeline fills in: `compress.pipeline` writes it out as
``<output_dir>/configs/search.toml``).

Candidates are scored on a held-out part of the *training* set (`compress.data.holdout_split`,
the official train1/train2 split: the supernet trains on the rest; validation and test images
are never looked at) with FID, KID, mIoU (a segmenter) or teacher fidelity (PSNR against the
teacher's outputs). The budget is paper-convention MACs at the search resolution, measured
latency (ONNX Runtime / PyTorch, cached in a latency LUT), or both. Strategies: ``exhaustive``
(every config under the budget, shardable over processes or GPUs) and ``evolution`` (Fast GAN
Compression's evolutionary search; `compress.searching.evolution`).

Outputs in ``output_dir`` (``.shardKofN`` before the extension for shards):
``search_log.jsonl`` (one row per evaluated config, appended as it goes: reruns resume there),
``search_results.json`` (rows within the budget, best first), ``search_pareto.json``,
``search_summary.json`` (the best config and the Pareto front), ``search_config.toml``, plus
``profile_cache.json`` (MACs per config), ``evolution_state.json`` and ``real_stats/``.
"""
import json
import os
import sys
from typing import List, Optional

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import describe_config, load_config
from compress.searching.config import METRICS, STRATEGIES, SearchConfig
from compress.searching.results import (format_table, higher_is_better, merge_rows, pareto_front, read_rows,
                                        select_best, write_summary, write_table)
from compress.searching.run import run_search

__all__ = ["SearchConfig", "METRICS", "STRATEGIES", "run_search", "main"]


# ----------------------------------------------------------------------------- merge / select

def merge_main(argv: List[str]) -> int:
    parser = command_parser(
        "python -m compress.search merge",
        "Merge the result tables (or logs) of search shards into one table, print its Pareto front "
        "and best config.",
        "example:\n  python -m compress.search merge runs/x/search_results.json "
        "runs/x/search_results.shard*of4.json")
    parser.add_argument("out", help="merged table to write (.json)")
    parser.add_argument("tables", nargs="+", help="shard tables (search_results.shardKofN.json) or logs")
    parser.add_argument("--cost", choices=("macs", "latency_ms"), default="macs", help="Pareto cost axis")
    parser.add_argument("--macs", type=float, help="keep only rows within this MACs budget")
    parser.add_argument("--latency-ms", type=float, help="keep only rows within this latency budget")
    parser.add_argument("--summary", help="also write a search summary here (best config, Pareto front); "
                                          "a pipeline continues from <its search folder>/search_summary.json")
    parser.add_argument("--force", action="store_true", help="replace an existing OUT / summary")
    args = parser.parse_args(argv)
    for path in (args.out, args.summary):
        if path and os.path.exists(path) and not args.force:
            raise ValueError(f"{path} exists; pass --force to replace it")
    if os.path.abspath(args.out) in {os.path.abspath(t) for t in args.tables}:
        raise ValueError(f"{args.out} is also an input; write the merged table elsewhere")
    rows = merge_rows([read_rows(path) for path in args.tables])
    if not rows:
        raise ValueError("the tables hold no rows")
    if args.macs is not None or args.latency_ms is not None:
        select_best(rows, macs=args.macs, latency_ms=args.latency_ms)  # ValueError naming the cheapest
        rows = [r for r in rows if (args.macs is None or float(r["macs"]) <= args.macs)
                and (args.latency_ms is None or float(r["latency_ms"]) <= args.latency_ms)]
    write_table(args.out, rows)
    front = pareto_front(rows, args.cost)
    print(format_table(front, f"Pareto front ({args.cost} vs {rows[0]['metric']}), {len(front)} of "
                              f"{len(rows)} configs:"))
    print(format_table(rows[:1], "best:"))
    print(f"merged {len(args.tables)} tables into {args.out} ({len(rows)} configs)")
    if args.summary:
        write_summary(args.summary, {
            "strategy": "exhaustive", "metric": rows[0]["metric"],
            "higher_is_better": higher_is_better(rows[0]["metric"]), "budget_macs": args.macs,
            "budget_latency_ms": args.latency_ms, "evaluated": len(rows), "best": rows[0], "pareto": front,
            "results": args.out, "merged_from": list(args.tables)})
        print(f"wrote {args.summary}")
    return 0


def select_main(argv: List[str]) -> int:
    parser = command_parser(
        "python -m compress.search select",
        "Pick the best searched config within a MACs and/or latency budget (upstream's select_arch.py).",
        "examples:\n  python -m compress.search select runs/x/search_results.json --macs 5.7e9\n"
        "  python -m compress.search select runs/x/search_results.json --latency-ms 12 --json")
    parser.add_argument("results", help="a search table (search_results*.json) or log (.jsonl)")
    parser.add_argument("--macs", type=float, help="MACs budget, e.g. 5.7e9")
    parser.add_argument("--latency-ms", type=float, help="latency budget in ms")
    parser.add_argument("--json", action="store_true", help="print the chosen row as JSON")
    args = parser.parse_args(argv)
    if args.macs is None and args.latency_ms is None:
        parser.error("give a budget: --macs and/or --latency-ms")
    best = select_best(read_rows(args.results), macs=args.macs, latency_ms=args.latency_ms)
    print(json.dumps(best, sort_keys=True) if args.json else format_table([best]))
    return 0


# ----------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python -m compress.search runs/facades_compress/configs/search.toml
  python -m compress.search CONFIG --strategy=exhaustive --budget_macs=5.7e9
  python -m compress.search CONFIG --budget_latency_ms=8 --latency_threads=2      (measured budget)
  for k in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$k python -m compress.search CONFIG \\
      --strategy=exhaustive --num_shards=4 --shard=$k & done; wait
  python -m compress.search merge OUT.json runs/x/search_results.shard*of4.json --summary SUMMARY.json
  python -m compress.search select OUT.json --macs 5.7e9

Rerunning a search resumes it (search_log.jsonl; evolution_state.json); --force starts over.

settings (TOML keys, or --key=value):
"""


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("merge", "select"):
        sub_main = merge_main if argv[0] == "merge" else select_main
        return run_command(lambda: sub_main(argv[1:]))
    parser = command_parser(
        "python -m compress.search",
        "Search a trained supernet for the best sub-network under a MACs or latency budget, scored "
        "on held-out training images. Subcommands: merge, select (python -m compress.search merge "
        "--help).", EXAMPLES + describe_config(SearchConfig),
        config_help="TOML config file (see configs/*_compress.toml)",
        force_help="start over: delete the log and tables")
    args, overrides = parse_command(parser, argv)

    def body() -> int:
        run_search(load_config(SearchConfig, args.config, overrides), force=args.force)
        return 0
    return run_command(body, "interrupted: rerun the same command to resume the search")


if __name__ == "__main__":
    sys.exit(main())
