"""compress.training.evaluation and monitor: validation scores, settings errors, image grids."""
import sys

import pytest
import torch

from compress.data import build_dataset
from compress.training.evaluation import Evaluator
from compress.training.monitor import Monitor, image_grid
from tests.compress.training.test_engine import FACADES


@pytest.fixture(scope="module")
def val_set():
    return build_dataset("labelmap", str(FACADES), "val", palette="facades", load_size=32)


def test_psnr_evaluator_scores_outputs_against_targets(val_set):
    evaluator = Evaluator(val_set, "psnr", torch.device("cpu"), max_images=5, batch_size=2)
    assert evaluator.count == 5 and evaluator.higher_is_better
    targets = torch.stack([val_set[i]["B"] for i in range(5)])
    calls = []

    def perfect(inputs):  # returns the targets: infinite PSNR
        start = sum(len(c) for c in calls)
        calls.append(inputs)
        return targets[start:start + len(inputs)]

    metrics, grid = evaluator(perfect)
    assert [len(c) for c in calls] == [2, 2, 1] and metrics["psnr"] == float("inf")
    assert grid.shape == (6, 3, 32, 32)  # [input, output, target] for the first 2 samples
    metrics, _ = evaluator(lambda x: torch.zeros(len(x), 3, 32, 32))
    assert 3 < metrics["psnr"] < 30


def test_evaluator_setting_errors(val_set):
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="needs paired data"):
        Evaluator(val_set, "psnr", cpu, paired=False)
    with pytest.raises(ValueError, match="segmenter"):
        Evaluator(val_set, "miou", cpu, num_classes=13)
    with pytest.raises(ValueError, match="at least 2"):
        Evaluator(val_set, "fid", cpu, max_images=1)
    with pytest.raises(ValueError, match="one of"):
        Evaluator(val_set, "lpips", cpu)


def test_image_grid_tiles_rows():
    images = torch.stack([torch.full((3, 2, 2), v) for v in (-1.0, 0.0, 1.0, 1.0)])
    grid = image_grid(images, columns=2)
    assert grid.shape == (3, 4, 4) and grid.min() == 0.0 and grid.max() == 1.0
    assert grid[0, 0, 0] == 0.0 and grid[0, 0, 2] == 0.5 and grid[0, 2, 0] == 1.0


def test_monitor_is_silent_off_the_main_rank(tmp_path, capsys):
    monitor = Monitor(str(tmp_path), enabled=False, total_steps=3)
    monitor.note("hidden")
    monitor.step({"loss": 1.0}, 1)
    monitor.scalars(1, {"loss": 1.0})
    monitor.close()
    captured = capsys.readouterr()
    assert "hidden" not in captured.out + captured.err and not (tmp_path / "tensorboard").exists()


def test_monitor_without_tensorboard_notes_once_and_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    monitor = Monitor(str(tmp_path), enabled=True, total_steps=2)
    monitor.scalars(1, {"loss": 1.0})
    monitor.images(1, "x", torch.zeros(1, 3, 2, 2), 1)
    monitor.close()
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("TensorBoard logging off") == 1
