"""Redraw ``docs/facades-ladder.png`` after v10 replaced v5 as the default rung: the same
population and rungs as ``provenance/ladder/ladder.json`` (which stays the record of the ladder
run), with the default rung's dotted line at the latency stamped in ``compressed.safetensors``.

    PYTHONPATH=. python assets/models/facades/provenance/v10_capacity/redraw_ladder_plot.py
"""
import json

from compress.ladder import write_ladder_plot
from compress.models.checkpoints import read_state_dict
from compress.searching.results import read_rows

LADDER = "assets/models/facades/provenance/ladder/"


def main() -> None:
    with open(LADDER + "ladder.json") as f:
        ladder = json.load(f)
    _, meta = read_state_dict("assets/models/facades/compressed.safetensors")
    rungs = [dict(rung, config=meta["config"], latency_ms=meta["latency_ms"]) if rung["name"] == meta["rung"]
             else rung for rung in ladder["rungs"]]
    counts = write_ladder_plot("docs/facades-ladder.png", read_rows(LADDER + "population.json"), rungs,
                               ladder["teacher_latency_ms"],
                               "the sub-networks scored in runs/facades_cutmix_compress")
    print(f"docs/facades-ladder.png: {counts['plotted']} sub-networks, default rung {meta['config']} "
          f"at {meta['latency_ms']} ms")


if __name__ == "__main__":
    main()
