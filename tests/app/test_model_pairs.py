"""app.model_pairs and the app's model-pair handling: the Pair menu switches both panes and the
canvas mode, a model of another kind offers a pair switch, a model without metadata is refused
with the command that fixes it, and files of the wrong kind get a clear message."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtGui import QImage

from app import model_files, model_pairs
from app.__main__ import main as app_main
from app.image_io import numpy_to_qimage, read_label_map, read_sketch, write_image, write_label_map
from app.main_window import PANES
from app.palette_panel import INK, PAPER
from compress.common.palettes import load_palette
from tests.app.helpers import open_window, wait_rendered, with_metadata


@pytest.fixture
def model_dir(tmp_path, tiny_models, monkeypatch):
    """assets/models stand-in with a 'facades' label pair and an 'edges2shoes' sketch pair."""
    root = tmp_path / "models"
    for name in ("facades", "edges2shoes"):
        (root / name).mkdir(parents=True)
    for role in PANES:
        shutil.copy(tiny_models[f"{role}.onnx"], root / "facades" / f"{role}.onnx")
        with_metadata(tiny_models[f"{role}.onnx"], root / "edges2shoes" / f"{role}.onnx",
                      input_kind="sketch", palette=None, placeholder=None, dataset="edges2shoes_1k")
    (root / "incomplete").mkdir()
    shutil.copy(tiny_models["original.onnx"], root / "incomplete" / "original.onnx")
    monkeypatch.setattr(model_files, "MODEL_DIR", str(root))
    monkeypatch.setattr(model_files, "PLACEHOLDER_DIR", str(tmp_path / "no_placeholders"))
    return root


def _facades(model_dir):
    return model_dir / "facades" / "original.onnx", model_dir / "facades" / "compressed.onnx"


def test_pairs_are_the_complete_model_folders(model_dir):
    pairs = model_pairs.discover_pairs()
    assert [p.name for p in pairs] == ["edges2shoes", "facades"]  # "incomplete" lacks compressed.onnx
    assert model_pairs.find_pair("facades").original == str(model_dir / "facades" / "original.onnx")
    with pytest.raises(ValueError, match="no model pair 'shoes'; available: edges2shoes, facades"):
        model_pairs.find_pair("shoes")
    sketch_meta = model_files.peek_metadata(str(model_dir / "edges2shoes" / "compressed.onnx"))
    assert model_pairs.pair_for(sketch_meta, pairs).name == "edges2shoes"
    assert model_pairs.pair_for({"palette": "cityscapes", "input_kind": "label"}, pairs) is None


def test_the_pair_menu_switches_both_panes_and_the_canvas_mode(qtbot, model_dir):
    window = open_window(qtbot, *_facades(model_dir))
    assert window.pair_name == "facades" and window.pair_actions["facades"].isChecked()
    assert "[facades]" in window.windowTitle() and window.open_map_action.text() == "&Open label map..."
    window.pair_actions["edges2shoes"].trigger()
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    assert window.kind == "sketch" and window.palette is None and (window.label_map.ids == PAPER).all()
    assert [v for v, _, _ in window.palette_panel.swatches] == [INK, PAPER]
    assert all(window.paths[n].startswith(str(model_dir / "edges2shoes")) for n in PANES)
    assert window.pair_actions["edges2shoes"].isChecked()
    assert not window.pair_actions["facades"].isChecked()
    assert window.open_map_action.text() == "&Open sketch..." and not window.tool_actions["fill"].isEnabled()
    assert "sketch" in window.windowTitle() and "[edges2shoes]" in window.windowTitle()
    wait_rendered(qtbot, window)
    window.pair_actions["facades"].trigger()  # and back: a label canvas with its palette
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    assert window.kind == "label" and window.palette.name == "facades"
    assert window.tool_actions["fill"].isEnabled()
    window.shutdown()


def test_a_model_of_another_kind_offers_the_matching_pair(qtbot, model_dir):
    window = open_window(qtbot, *_facades(model_dir))
    questions = []
    window.ask = lambda title, text: questions.append(text) or False  # the user says no first
    sketch = str(model_dir / "edges2shoes" / "compressed.onnx")
    window.open_model_guarded("compressed", sketch)
    assert "Switch to the edges2shoes pair" in questions[0] and window.kind == "label"
    assert window.paths["compressed"].startswith(str(model_dir / "facades"))  # nothing changed
    window.ask = lambda title, text: True
    window.open_model_guarded("compressed", sketch)
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    assert window.kind == "sketch" and window.paths["compressed"] == sketch
    assert window.paths["original"] == str(model_dir / "edges2shoes" / "original.onnx")
    assert window.pair_name == "edges2shoes" and not window.errors
    window.shutdown()


def test_without_a_matching_pair_the_model_can_fill_both_panes(qtbot, model_dir, tmp_path):
    window = open_window(qtbot, *_facades(model_dir))
    city = str(with_metadata(model_dir / "facades" / "original.onnx", tmp_path / "city.onnx",
                             palette="cityscapes"))
    questions = []
    window.ask = lambda title, text: questions.append(text) or True
    window.open_model_guarded("original", city)
    assert "no shipped pair does" in questions[0]
    qtbot.waitUntil(lambda: len(window.engine_info) == 2, timeout=30000)
    assert window.paths == {"original": city, "compressed": city} and window.palette.name == "cityscapes"
    assert window.pair_name is None and "[" not in window.windowTitle().split(":")[0]
    window.shutdown()


def test_a_model_without_metadata_is_refused_with_the_fix(qtbot, model_dir, tmp_path, tiny_models, capsys):
    bare = with_metadata(tiny_models["compressed.onnx"], tmp_path / "bare.onnx", input_kind=None,
                         palette=None)
    facades = model_dir / "facades"
    assert app_main(["--original", str(facades / "original.onnx"), "--compressed", str(bare),
                     "--screenshot", str(tmp_path / "x.png")]) == 3
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "bare.onnx carries no input kind or palette" in error
    assert "python -m export.onnx" in error
    pth = tmp_path / "official.pth"
    pth.write_bytes(b"")
    with pytest.raises(ValueError, match="compress.checkpoints convert .*official.pth"):
        model_files.require_kind(str(pth), {})
    window = open_window(qtbot, facades / "original.onnx", facades / "compressed.onnx")
    window.open_model_guarded("compressed", str(bare))
    assert "carries no input kind" in window.errors[-1] and window.paths["compressed"] == str(
        facades / "compressed.onnx")
    window.shutdown()


def test_pair_flag_opens_a_pair_by_name_and_screenshots_it(model_dir, tmp_path, capsys):
    shot = tmp_path / "sketch.png"
    assert app_main(["--pair", "edges2shoes", "--screenshot", str(shot), "--threads", "1"]) == 0
    assert QImage(str(shot)).width() > 600
    assert app_main(["--pair", "nope", "--screenshot", str(tmp_path / "y.png")]) == 3
    assert "no model pair 'nope'" in capsys.readouterr().err


def test_files_of_the_wrong_kind_get_a_clear_message(tmp_path):
    palette = load_palette("facades")
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    write_image(str(photo), numpy_to_qimage(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="photo.png: .* match no 'facades' class colour"):
        read_label_map(str(photo), palette, (32, 32))
    sketch = np.full((64, 64), 255, np.uint8)
    sketch[20:24, :] = 0
    sketch_path = tmp_path / "sketch.png"
    write_image(str(sketch_path), numpy_to_qimage(sketch))
    with pytest.raises(ValueError, match="light gray image \\(a sketch\\?\\)"):
        read_label_map(str(sketch_path), palette, (32, 32))
    assert (read_sketch(str(sketch_path), (32, 32)) < 128).any()
    label = tmp_path / "label.png"
    write_label_map(str(label), rng.integers(0, 12, (64, 64)).astype(np.uint8), palette)
    with pytest.raises(ValueError, match="label.png is a palette \\(class-id\\) PNG"):
        read_sketch(str(label), (32, 32))
    colour_map = tmp_path / "colour_map.png"
    write_image(str(colour_map), numpy_to_qimage(palette.lut()[np.full((64, 64), 3, np.uint8)]))
    with pytest.raises(ValueError, match="mostly dark"):
        read_sketch(str(colour_map), (32, 32))
    assert (read_label_map(str(colour_map), palette, (32, 32)) == 3).all()  # the right kind still reads


def test_colour_lookup_matches_the_nearest_colour_rule():
    palette = load_palette("facades")
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    colors = np.asarray(palette.colors, np.int64)
    squared = ((rgb.reshape(-1, 3).astype(np.int64)[:, None] - colors[None]) ** 2).sum(2)
    expected = np.asarray(palette.ids, np.uint8)[squared.argmin(1)].reshape(50, 70)
    ids, distance = palette.nearest(rgb, pixels_per_block=333)  # several blocks of rows
    assert np.array_equal(ids, expected) and np.array_equal(palette.to_ids(rgb), expected)
    np.testing.assert_allclose(distance.ravel(), np.sqrt(squared.min(1)), rtol=1e-6)
    assert Path(model_files.SAMPLES_DIR).is_dir()


def test_a_huge_claimed_resolution_is_refused_before_allocating(tiny_models, tmp_path, capsys):
    """A dynamic ONNX whose metadata says 100000x100000 made the app allocate ~10 GB and abort."""
    huge = [with_metadata(tiny_models[f"{n}.onnx"], tmp_path / f"{n}_huge.onnx", resolution=[100000, 100000])
            for n in PANES]
    assert app_main(["--original", str(huge[0]), "--compressed", str(huge[1]), "--screenshot",
                     str(tmp_path / "x.png")]) == 3
    assert "metadata resolution 100000x100000 is outside 1..8192" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not \\[height, width\\]"):
        model_files.model_resolution({"resolution": "big"})
    assert model_files.model_resolution({}) == (256, 256)


def test_checkpoint_metadata_of_the_wrong_shape_is_one_clear_error(tmp_path):
    from safetensors.numpy import save_file
    for name, meta in (("list", "[1, 2]"), ("broken", "{oops")):
        path = tmp_path / f"{name}.safetensors"
        save_file({"w": np.zeros(2, np.float32)}, str(path), metadata={"format": "x", "meta": meta})
        with pytest.raises(ValueError, match=f"{name}.safetensors: the checkpoint metadata is not a JSON"):
            model_files.peek_metadata(str(path))


def test_saving_into_an_unwritable_place_is_one_line_in_the_status_bar(qtbot, model_dir, tmp_path):
    window = open_window(qtbot, *_facades(model_dir))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    window._guarded("Save label map", lambda: window.save_label_map(str(blocker / "map.png")))
    message = window.statusBar().currentMessage()
    assert message.startswith(f"could not write {blocker / 'map.png'}") and "\n" not in message
    window.shutdown()


def write_metrics(folder: Path, generators: dict) -> None:
    import json
    (folder / "metrics.json").write_text(json.dumps({"generators": generators}))


def test_model_quality_matches_a_pairs_scores_by_file_name_and_folder(tmp_path):
    pair = tmp_path / "facades"
    (pair / "ladder").mkdir(parents=True)
    paths = [str(pair / "original.onnx"), str(pair / "compressed.onnx"), str(pair / "ladder" / "fast.onnx"),
             str(pair / "ladder" / "compressed.onnx"), str(tmp_path / "elsewhere.onnx")]
    write_metrics(pair, {
        "teacher": {"path": "assets/models/facades/original.safetensors", "miou": 34.4, "kid": 0.15},
        "student": {"path": "assets/models/facades/compressed.safetensors", "miou": 37.1, "kid": 0.19},
        "fast": {"path": "runs/x/ladder/fast.safetensors", "miou": 30.0},
        "other": {"path": "assets/models/facades/provenance/v3_student.safetensors", "miou": 99.0}})
    label, scores = model_pairs.model_quality(paths)
    assert label.startswith("validation mIoU") and scores == {paths[0]: 34.4, paths[1]: 37.1, paths[2]: 30.0}
    # no mIoU anywhere: the next metric; nothing scored or no readable file: nothing
    write_metrics(pair, {"teacher": {"path": "original.safetensors", "kid": 0.15}})
    assert model_pairs.model_quality(paths) == ("validation KID, lower is better", {paths[0]: 0.15})
    (pair / "metrics.json").write_text("{not json")
    assert model_pairs.model_quality(paths) == ("", {})
    assert model_pairs.model_quality([str(tmp_path / "elsewhere.onnx")]) == ("", {})


def test_the_shipped_pairs_are_scored_for_the_benchmark_plot():
    root = Path(model_files.MODEL_DIR)
    label, scores = model_pairs.model_quality([str(root / "facades" / f"{role}.onnx")
                                               for role in ("original", "compressed")])
    assert label.startswith("validation mIoU") and len(scores) == 2
    label, scores = model_pairs.model_quality([str(root / "edges2shoes" / "compressed.onnx")])
    assert label.startswith("validation KID") and 0 < list(scores.values())[0] < 1
