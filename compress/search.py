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
import sys
from typing import List, Optional

from compress.common.cli import command_parser, parse_command, run_command
from compress.common.config import describe_config, load_config
from compress.searching.config import METRICS, STRATEGIES, SearchConfig
from compress.searching.results import merge_main, select_main
from compress.searching.run import run_search

__all__ = ["SearchConfig", "METRICS", "STRATEGIES", "run_search", "main"]


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
        "on held-out training images. Subcommands: merge, select (python -m compress.search merge --help).",
        EXAMPLES + describe_config(SearchConfig))
    parser.add_argument("config", nargs="?", help="TOML config file (see configs/*_compress.toml)")
    parser.add_argument("--force", action="store_true", help="start over: delete the log and tables")
    args, overrides = parse_command(parser, argv)

    def body() -> int:
        run_search(load_config(SearchConfig, args.config, overrides), force=args.force)
        return 0
    return run_command(body, "interrupted: rerun the same command to resume the search")


if __name__ == "__main__":
    sys.exit(main())
