"""LabelMap: strokes as undo steps, redo, bounded history, versions."""
import numpy as np
import pytest

from app import tools
from app.label_map import LabelMap


def paint(label_map, start, end, value, diameter=3):
    label_map.begin_stroke()
    if tools.paint_segment(label_map.ids, start, end, diameter, value):
        label_map.mark_changed()
    return label_map.end_stroke()


def test_stroke_undo_redo_round_trip():
    label_map = LabelMap(16, 16, fill_value=1)
    blank = label_map.snapshot()
    assert paint(label_map, (2, 2), (12, 2), 4)
    stroke = label_map.snapshot()
    assert (stroke == 4).sum() > 10 and label_map.can_undo and not label_map.can_redo
    assert label_map.undo()
    np.testing.assert_array_equal(label_map.ids, blank)
    assert label_map.can_redo
    assert label_map.redo()
    np.testing.assert_array_equal(label_map.ids, stroke)
    assert not label_map.redo()


def test_a_stroke_that_changes_nothing_leaves_no_undo_step():
    label_map = LabelMap(8, 8, fill_value=2)
    assert not paint(label_map, (1, 1), (5, 5), 2)  # painting the fill value
    assert label_map.history_depth == 0 and not label_map.can_undo


def test_new_edit_after_undo_drops_the_redo_branch():
    label_map = LabelMap(8, 8, fill_value=0)
    paint(label_map, (1, 1), (1, 1), 5)
    label_map.undo()
    paint(label_map, (6, 6), (6, 6), 3)
    assert not label_map.can_redo and label_map.ids[1, 1] == 0 and label_map.ids[6, 6] == 3


def test_history_is_bounded():
    label_map = LabelMap(8, 8, fill_value=0, max_history=3)
    for value in range(1, 6):
        paint(label_map, (0, 0), (0, 0), value, diameter=1)
    assert label_map.history_depth == 3
    while label_map.undo():
        pass
    assert label_map.ids[0, 0] == 2  # the two oldest steps fell off the stack


def test_versions_count_every_change():
    label_map = LabelMap(8, 8, fill_value=0)
    versions = [label_map.version]
    paint(label_map, (2, 2), (2, 2), 1)
    versions.append(label_map.version)
    label_map.undo()
    versions.append(label_map.version)
    label_map.redo()
    versions.append(label_map.version)
    assert versions == sorted(set(versions))  # strictly increasing


def test_restore_stroke_start_gives_rectangle_previews():
    label_map = LabelMap(10, 10, fill_value=0)
    label_map.begin_stroke()
    tools.fill_rectangle(label_map.ids, (0, 0), (8, 8), 3)
    label_map.mark_changed()
    assert label_map.restore_stroke_start()
    tools.fill_rectangle(label_map.ids, (0, 0), (2, 2), 3)
    label_map.mark_changed()
    assert label_map.end_stroke()
    assert (label_map.ids == 3).sum() == 9  # only the final rectangle remains
    label_map.undo()
    assert (label_map.ids == 0).all()
    with pytest.raises(RuntimeError):
        label_map.restore_stroke_start()


def test_replace_is_one_undoable_step_and_checks_shape():
    label_map = LabelMap(4, 4, fill_value=0)
    new = np.arange(16, dtype=np.int64).reshape(4, 4)
    assert label_map.replace(new)
    assert label_map.ids.dtype == np.uint8 and label_map.ids[3, 3] == 15
    assert not label_map.replace(new)  # identical: no step
    label_map.undo()
    assert (label_map.ids == 0).all()
    with pytest.raises(ValueError, match="does not fit"):
        label_map.replace(np.zeros((5, 4)))


def test_reset_changes_size_and_drops_history():
    label_map = LabelMap(4, 4, fill_value=0)
    paint(label_map, (1, 1), (1, 1), 3)
    label_map.reset(fill_value=255, height=6, width=8)
    assert label_map.shape == (6, 8) and (label_map.ids == 255).all()
    assert not label_map.can_undo
