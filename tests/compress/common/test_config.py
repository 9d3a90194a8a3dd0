"""compress.common.config: TOML loading, --key=value overrides, errors, resolved config round trip."""
from dataclasses import dataclass
from typing import List, Optional

import pytest

from compress.common.config import (describe_config, diff_configs, dumps_config, load_config, option,
                                    save_config)


@dataclass
class Demo:
    name: str = option("run", "a name")
    epochs: int = option(5, "epochs")
    lr: float = option(2e-4, "learning rate")
    flip: bool = option(True, "flip")
    palette: Optional[str] = option(None, "palette")
    limit: Optional[int] = option(None, "limit")
    widths: List[int] = option([16, 32], "widths")

    def __post_init__(self):
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")


def write(tmp_path, text: str):
    path = tmp_path / "demo.toml"
    path.write_text(text)
    return str(path)


def test_defaults_toml_and_overrides_in_order(tmp_path):
    path = write(tmp_path, 'name = "facades"\nepochs = 7\nlr = 1\npalette = "facades"\nwidths = [8, 8, 4]\n')
    cfg = load_config(Demo, path, ["--epochs=9", "--lr=1e-3", "--flip=false", "--limit=none"])
    assert cfg == Demo(name="facades", epochs=9, lr=1e-3, flip=False, palette="facades", limit=None,
                       widths=[8, 8, 4])
    assert isinstance(cfg.lr, float) and isinstance(cfg.epochs, int)
    assert load_config(Demo) == Demo()


def test_override_type_conversion():
    cfg = load_config(Demo, None, ["--flip", "--limit=1e3", "--widths=4,8", "--palette=camvid",
                                   "--name=a b", "--lr=5"])
    assert (cfg.flip, cfg.limit, cfg.widths, cfg.palette, cfg.name, cfg.lr) == (True, 1000, [4, 8], "camvid",
                                                                                 "a b", 5.0)
    assert load_config(Demo, None, ["--widths=[1, 2]", "--flip=0"]).widths == [1, 2]
    assert load_config(Demo, None, ["--flip=0"]).flip is False
    assert load_config(Demo, None, ["--epochs=1_000"]).epochs == 1000


@pytest.mark.parametrize("argv, message", [
    (["--epoch=3"], "unknown key 'epoch' (did you mean epochs?)"),
    (["--epochs=three"], "--epochs=three"),
    (["--epochs=2.5"], "expected an integer"),
    (["--flip=maybe"], "expected true or false"),
    (["--epochs"], "--epochs needs a value"),
    (["epochs=3"], "settings are given as --key=value"),
    (["--epochs=-1"], "epochs must be >= 0"),
    (["--lr=none"], "lr"),
])
def test_bad_overrides_raise_clear_errors(argv, message):
    with pytest.raises(ValueError) as error:
        load_config(Demo, None, argv)
    assert message in str(error.value)


def test_unknown_key_in_toml_names_file_and_valid_keys(tmp_path):
    path = write(tmp_path, "epohcs = 3\n")
    with pytest.raises(ValueError) as error:
        load_config(Demo, path)
    text = str(error.value)
    assert path in text and "epohcs" in text and "valid keys: name, epochs, lr, flip" in text


@pytest.mark.parametrize("text, message", [
    ("epochs = \"3\"\n", "expected an integer"),
    ("name = 3\n", "expected a string"),
    ("flip = 1\n", "expected true or false"),
    ("epochs = [\n", "not valid TOML"),
    ("[train]\nepochs = 3\n", "tables"),
])
def test_bad_toml_values(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as error:
        load_config(Demo, path)
    assert path in str(error.value)


def test_a_non_utf8_config_names_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.toml: not UTF-8 text"):
        load_config(Demo, str(path))


def test_missing_file():
    with pytest.raises(ValueError, match="config file not found"):
        load_config(Demo, "/nonexistent/x.toml")


def test_required_field_missing():
    @dataclass
    class Needs:
        root: str
        epochs: int = 1

    with pytest.raises(ValueError, match="missing required setting"):
        load_config(Needs)
    assert load_config(Needs, None, ["--root=/data"]).root == "/data"


def test_save_config_round_trip(tmp_path):
    cfg = Demo(name='quote " and \\ back\nslash é', epochs=3, lr=1.5e-4, flip=False, palette=None, limit=7,
               widths=[1, 2])
    path = tmp_path / "run" / "config.toml"
    save_config(cfg, str(path))
    text = path.read_text()
    assert "# palette = none" in text and "epochs = 3" in text
    assert load_config(Demo, str(path)) == cfg
    assert diff_configs(cfg, load_config(Demo, str(path), ["--epochs=4"])) == {"epochs": (3, 4)}
    save_config(cfg, str(tmp_path / "config.json"))  # JSON by extension
    assert '"epochs": 3' in (tmp_path / "config.json").read_text()
    save_config(Demo(), str(path))  # the run's own copy is replaced
    assert load_config(Demo, str(path)) == Demo()


def test_describe_and_dump():
    text = describe_config(Demo)
    assert "epochs (int, default 5): epochs" in text
    assert "palette (str or none, default none)" in text
    assert "widths (list of int, default [16, 32])" in text
    assert dumps_config(Demo(), header="h").startswith("# h\nname = \"run\"\n")


@pytest.mark.parametrize("command, argv, message", [
    ("compress.search", ["--supernet=s", "--dataroot=d", "--population=0"], "population must be >= 1"),
    ("compress.search", ["--supernet=s", "--dataroot=d", "--mutate_prob=2"], "mutate_prob is a fraction"),
    ("compress.search", ["--supernet=s", "--dataroot=d", "--num_shards=2", "--shard=2"],
     "shard = 2 must be below num_shards = 2"),
    ("compress.search", ["--supernet=s", "--dataroot=d", "--budget_macs=-1"], "budget_macs must be > 0"),
    ("compress.train_segmenter", ["--lr=0"], "lr must be > 0"),
    ("compress.evaluate", ["g.safetensors", "--kid_subsets=0", "--metrics=kid"], "kid_subsets must be >= 1"),
])
def test_every_command_checks_numeric_ranges_when_reading_its_config(command, argv, message, capsys):
    """Numbers out of range fail when the config is read, with the setting's name (not deep in
    a run with a traceback)."""
    import importlib
    assert importlib.import_module(command).main(argv) == 2
    assert message in capsys.readouterr().err
