"""``python -m app.measure`` in-process on the tiny models: a short run yields real figures."""
import json

from app.measure import main, stroke_to_pixels_ms


def test_stroke_to_pixels_matches_events_to_the_first_frame_showing_them():
    events = [(1.000, 1), (1.010, 2), (1.020, 3), (1.200, 4)]
    frames = [(1.050, 1), (1.100, 3), (1.150, 3)]  # version 2 was never shown on its own
    assert [round(v) for v in stroke_to_pixels_ms(events, frames)] == [50, 90, 80]


def test_measure_runs_on_tiny_models(tiny_models, tmp_path, capsys):
    out = tmp_path / "measure.json"
    code = main(["--original", tiny_models["original.onnx"], "--compressed", tiny_models["compressed.onnx"],
                 "--seconds", "1", "--threads", "1", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["map_changes"] > 10 and report["requests"] > 3
    for pane in report["panes"].values():
        assert pane["frames_shown"] >= 2 and pane["stroke_to_pixels_ms"]["p50"] > 0
    assert report["gui"]["event_loop_gap_ms"]["max"] >= 4
    assert "GUI thread: max event-loop gap" in capsys.readouterr().out
