"""A scripted facade drawing made with the canvas tools, for the screenshot and the measurements.

It goes through `CanvasWidget.stroke` (the same tool code a mouse drives), so the result is a
genuinely drawn map: a facade block with a cornice, molding bands, rows of windows with sills,
a balcony, pillars, a shop front and a door. Coordinates are fractions of the canvas, so any
model resolution works; palettes without facade class names get the same layout in their
first classes.
"""
from typing import Dict, List, Tuple

from app.canvas import CanvasWidget
from compress.common.palettes import Palette

FACADE_CLASSES = ("facade", "cornice", "molding", "window", "sill", "balcony", "pillar", "shop",
                  "door", "deco", "blind")


def class_ids(palette: Palette) -> Dict[str, int]:
    """Facade class name -> id; missing names map to the palette's other classes in turn."""
    by_name = {name: class_id for class_id, name in zip(palette.ids, palette.names)}
    spare = [i for i in palette.ids if i not in (palette.background_id, palette.ignore_id)]
    return {name: by_name.get(name, spare[index % len(spare)]) for index, name in enumerate(FACADE_CLASSES)}


def draw_facade(canvas: CanvasWidget, palette: Palette) -> int:
    """Draw the facade on ``canvas`` (one undo step per stroke); returns the number of strokes."""
    height, width = canvas.label_map.shape
    ids = class_ids(palette)

    def at(fx: float, fy: float) -> Tuple[float, float]:
        return fx * (width - 1), fy * (height - 1)

    def rect(name: str, x0: float, y0: float, x1: float, y1: float) -> None:
        canvas.stroke([at(x0, y0), at(x1, y1)], tool="rectangle", value=ids[name])

    def line(name: str, points: List[Tuple[float, float]], diameter_fraction: float,
             tool: str = "line") -> None:
        canvas.set_brush_size(max(1, int(round(diameter_fraction * width))))
        canvas.stroke([at(x, y) for x, y in points], tool=tool, value=ids[name])

    strokes_before = canvas.label_map.history_depth
    rect("facade", 0.05, 0.07, 0.95, 1.0)
    rect("cornice", 0.03, 0.07, 0.97, 0.12)
    for band in (0.37, 0.62):
        rect("molding", 0.05, band, 0.95, band + 0.025)
    columns = [0.12, 0.33, 0.56, 0.77]
    for top in (0.16, 0.41):  # two upper floors of windows with sills and blinds
        for left in columns:
            rect("window", left, top, left + 0.12, top + 0.15)
            rect("sill", left - 0.01, top + 0.15, left + 0.13, top + 0.17)
        rect("blind", columns[0] - 0.035, top, columns[0] - 0.01, top + 0.15)
        rect("blind", columns[-1] + 0.13, top, columns[-1] + 0.155, top + 0.15)
    rect("balcony", 0.30, 0.53, 0.70, 0.60)
    line("pillar", [(0.075, 0.13), (0.075, 0.78)], 0.025)
    line("pillar", [(0.925, 0.13), (0.925, 0.78)], 0.025)
    rect("shop", 0.08, 0.70, 0.50, 0.97)
    rect("window", 0.12, 0.74, 0.46, 0.90)
    rect("door", 0.62, 0.70, 0.78, 0.99)
    # a free-hand ornament above the door, drawn with the brush like a mouse stroke would
    line("deco", [(0.60, 0.675), (0.65, 0.66), (0.70, 0.655), (0.75, 0.66), (0.80, 0.675)], 0.02,
         tool="brush")
    return canvas.label_map.history_depth - strokes_before
