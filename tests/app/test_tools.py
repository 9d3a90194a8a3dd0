"""Drawing tools on uint8 maps: exact pixels, clipping, change reporting."""
import numpy as np
import pytest

from app import tools


def blank(height=32, width=32, value=1):
    return np.full((height, width), value, dtype=np.uint8)


def test_click_paints_a_disc_of_the_brush_diameter():
    canvas = blank()
    assert tools.paint_segment(canvas, (16, 16), (16, 16), 5, 7)
    painted = np.argwhere(canvas == 7)
    assert len(painted) == 21  # pixel centres within radius 2.5 of (16, 16)
    assert painted.min(axis=0).tolist() == [14, 14] and painted.max(axis=0).tolist() == [18, 18]
    assert np.all(np.hypot(painted[:, 0] - 16, painted[:, 1] - 16) <= 2.5)


def test_one_pixel_segment_is_a_connected_line_without_gaps():
    canvas = blank()
    tools.paint_segment(canvas, (2, 3), (29, 17), 1, 9)
    for x in range(2, 30):  # every column between the ends is covered
        assert (canvas[:, x] == 9).any(), f"gap at x={x}"
    assert canvas[3, 2] == 9 and canvas[17, 29] == 9
    assert (canvas == 9).sum() < 2 * 28  # thin: about one pixel per column


def test_segment_is_a_capsule_with_round_caps():
    canvas = blank()
    tools.paint_segment(canvas, (10, 16), (20, 16), 6, 4)
    assert (canvas[16, 7:24] == 4).all()  # the caps reach radius 3 beyond both ends
    assert canvas[16, 6] == 1 and canvas[16, 24] == 1
    assert canvas[13, 15] == 4 and canvas[12, 15] == 1


def test_strokes_outside_are_clipped_and_report_no_change():
    canvas = blank()
    assert not tools.paint_segment(canvas, (-20, -20), (-10, -5), 4, 3)
    assert tools.paint_segment(canvas, (-5, 0), (3, 0), 3, 3)
    assert canvas[0, 0] == 3 and canvas[0, 4] == 3 and canvas[0, 5] == 1  # cap radius 1.5
    assert not tools.paint_segment(canvas, (0, 0), (2, 0), 1, 3)  # already that value


def test_rectangle_is_inclusive_and_clipped():
    canvas = blank()
    assert tools.fill_rectangle(canvas, (20, 10), (4, 2), 5)  # corners in any order
    assert (canvas[2:11, 4:21] == 5).all() and (canvas == 5).sum() == 9 * 17
    assert tools.fill_rectangle(canvas, (28, 28), (40, 40), 6)
    assert (canvas[28:, 28:] == 6).all()
    assert not tools.fill_rectangle(canvas, (40, 40), (50, 50), 6)


def test_flood_fill_replaces_exactly_the_connected_region():
    canvas = blank()
    canvas[:, 10] = 2  # a wall splits the canvas
    canvas[5, 20] = 3  # an island inside the right part
    assert tools.flood_fill(canvas, (25, 25), 8)
    assert (canvas[:, :10] == 1).all()  # the left side is untouched
    assert (canvas[:, 11:][canvas[:, 11:] != 3] == 8).all()
    assert canvas[5, 20] == 3
    assert not tools.flood_fill(canvas, (25, 25), 8)  # same value: nothing to do
    assert not tools.flood_fill(canvas, (99, 2), 8)  # outside


def test_flood_fill_is_four_connected():
    canvas = blank(5, 5)
    canvas[np.eye(5, dtype=bool)] = 2  # a diagonal of 2s: 4-connected pieces only
    tools.flood_fill(canvas, (0, 0), 7)
    assert canvas[0, 0] == 7 and canvas[1, 1] == 2


def test_clear_and_brush_clamp():
    canvas = blank()
    canvas[3, 3] = 9
    assert tools.clear(canvas, 1) and (canvas == 1).all()
    assert not tools.clear(canvas, 1)
    assert tools.clamp_brush(0.2) == tools.MIN_BRUSH_PX and tools.clamp_brush(500) == tools.MAX_BRUSH_PX
    assert tools.clamp_brush(7.6) == 8


def test_tools_reject_non_uint8_maps():
    with pytest.raises(ValueError, match="uint8"):
        tools.paint_segment(np.zeros((4, 4), np.int64), (0, 0), (1, 1), 1, 1)
