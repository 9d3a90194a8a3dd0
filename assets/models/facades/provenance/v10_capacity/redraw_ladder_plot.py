"""Redraw ``docs/facades-ladder.png`` after v10 replaced v5 as the default rung: the same
population and rungs as ``provenance/ladder/ladder.json`` (which stays the record of the ladder
run), with the default rung's dotted line at the latency stamped in ``compressed.safetensors``.

    PYTHONPATH=. python assets/models/facades/provenance/v10_capacity/redraw_ladder_plot.py
"""
import json

from compress.models.checkpoints import read_state_dict
from compress.searching.plot import write_population_plot
from compress.searching.results import read_rows

LADDER = "assets/models/facades/provenance/ladder/"


def main() -> None:
    with open(LADDER + "ladder.json") as f:
        ladder = json.load(f)
    _, meta = read_state_dict("assets/models/facades/compressed.safetensors")
    marked = {}
    for rung in ladder["rungs"]:
        row = {"config": rung["config"], "value": rung["value"], "latency_ms": rung["latency_ms"]}
        if rung["name"] == meta["rung"]:
            row.update(config=meta["config"], latency_ms=meta["latency_ms"])
        marked[rung["name"]] = row
    rows = read_rows(LADDER + "population.json")
    counts = write_population_plot("docs/facades-ladder.png", rows, "latency_ms", marked,
                                   ("teacher", ladder["teacher_latency_ms"]),
                                   title="the sub-networks scored in runs/facades_cutmix_compress")
    print(f"docs/facades-ladder.png: {counts['plotted']} sub-networks, default rung {meta['config']} "
          f"at {meta['latency_ms']} ms")


if __name__ == "__main__":
    main()
