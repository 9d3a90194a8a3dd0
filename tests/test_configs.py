"""Every TOML file in configs/ loads with the settings of the command it is written for, so a
renamed or removed setting cannot leave a shipped config behind."""
from pathlib import Path

import pytest

from compress.common.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.toml"))


def settings_class(name: str):
    """The command a config file is for, by its name (the convention of configs/)."""
    if name.startswith("segmenter_"):
        return None  # compress.train_segmenter, which also reads legacy key names
    if name.endswith("_supernet"):
        from compress.supernet import SupernetConfig
        return SupernetConfig
    if name.endswith("_finetune"):
        from compress.finetune import FinetuneConfig
        return FinetuneConfig
    if name.endswith("_distill_subnet"):
        from compress.distill import DistillConfig
        return DistillConfig
    from compress.train import TrainConfig
    return TrainConfig


def check_pipeline(path: Path) -> None:
    from compress.pipeline import STAGES, Layout, load_pipeline, stage_config, stage_settings
    pipe, tables = load_pipeline(str(path))
    stages = pipe.stages()
    for stage in stages:
        if stage in ("finetune", "extract"):  # wired from the search's result: check the keys only
            fields = set(STAGES[stage].load()[0].__dataclass_fields__)
            assert set(tables[stage]) <= fields, f"{path.name} [{stage}]: {set(tables[stage]) - fields}"
            continue
        values = stage_settings(stage, pipe, tables[stage], Layout("runs/x"), stages, str(path))
        stage_config(stage, values, f"{path} [{stage}]")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_loads(path):
    name = path.stem
    if name.endswith("_compress") or name == "smoke_pipeline":
        check_pipeline(path)
    elif name.startswith("segmenter_"):
        from compress.train_segmenter import load_segmenter_config
        load_segmenter_config(str(path))
    else:
        load_config(settings_class(name), str(path))
