"""Stage configuration: one flat dataclass per stage, read from TOML, overridden by ``--key=value``.

Every entry point of the compression pipeline (train, distill, supernet, search, ...) declares its
settings as a dataclass whose fields carry a default and a one-line help text (`option`). This
module turns such a class into a configured instance:

- ``load_config(TrainConfig, "configs/facades_pix2pix.toml", ["--lr=1e-4", "--flip=false"])``:
  TOML values first, then command-line overrides, each converted to the field's declared type
  (int, float, str, bool, Optional[...], List[...]); unknown keys and unparsable values raise a
  ValueError that names the file, the key and the valid choices.
- ``save_config(cfg, run_dir / "config.toml")`` writes the resolved values (atomically) next to
  the outputs, so a run can be repeated or resumed exactly; the file loads back with
  `load_config`.
- ``describe_config(TrainConfig)`` lists the keys with types, defaults and help for ``--help``.

TOML is read with ``tomllib`` (Python 3.11+) or the ``tomli`` package (Python 3.8-3.10). The file
is flat: top-level ``key = value`` pairs only, because the dataclasses are flat (no tables).
"""
import dataclasses
import difflib
import json
import math
import sys
import typing
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the Jetson's Python 3.8
    import tomli as tomllib

T = TypeVar("T")

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_NONE = ("none", "null", "")


def option(default: Any, help: str, **kwargs) -> Any:  # noqa: A002 - mirrors argparse's name
    """A dataclass field with a help text; list defaults are copied per instance."""
    metadata = {"help": help}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


# ----------------------------------------------------------------------------- type conversion

def field_types(cls: type) -> Dict[str, Any]:
    """{field name: resolved type} of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unwrap_optional(kind: Any) -> Tuple[Any, bool]:
    """(inner type, accepts None) for ``Optional[X]``; (kind, False) otherwise."""
    if getattr(kind, "__origin__", None) is typing.Union:
        args = [a for a in kind.__args__ if a is not type(None)]
        if len(args) == 1 and len(kind.__args__) == 2:
            return args[0], True
    return kind, False


def type_name(kind: Any) -> str:
    inner, optional = _unwrap_optional(kind)
    origin = getattr(inner, "__origin__", None)
    if origin in (list, List, tuple, Tuple):
        name = f"list of {type_name(inner.__args__[0])}"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} or none" if optional else name


def _convert_scalar(value: Any, kind: Any, from_text: bool) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).strip().lower() in _TRUE:
            return True
        if from_text and str(value).strip().lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if from_text:
            text = str(value).strip().replace("_", "")
            try:
                return int(text)
            except ValueError:
                number = float(text)  # accepts 1e3; raises ValueError otherwise
                if number.is_integer():
                    return int(number)
        raise ValueError("expected an integer")
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("expected a number, got a boolean")
        if isinstance(value, (int, float)):
            return float(value)
        if from_text:
            number = float(str(value).strip())
            if math.isnan(number):
                raise ValueError("expected a number, got nan")
            return number
        raise ValueError("expected a number")
    if kind is str:
        if isinstance(value, str):
            return value
        if from_text:
            return str(value)
        raise ValueError("expected a string (quote it in TOML)")
    raise TypeError(f"unsupported config field type {kind!r}")


def convert_value(value: Any, kind: Any, from_text: bool = False) -> Any:
    """Convert ``value`` (a TOML value, or command-line text when ``from_text``) to ``kind``."""
    inner, optional = _unwrap_optional(kind)
    if value is None or (from_text and optional and str(value).strip().lower() in _NONE):
        if optional:
            return None
        raise ValueError("a value is required (none is not allowed here)")
    origin = getattr(inner, "__origin__", None)
    if origin in (list, List, tuple, Tuple):
        item_kind = inner.__args__[0]
        if from_text and isinstance(value, str):
            text = value.strip()
            if text.startswith("["):  # JSON/TOML-style list: [1, 2] or ["a", "b"]
                items = json.loads(text)
            else:
                items = [part.strip() for part in text.split(",") if part.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ValueError("expected a list")
        converted = [convert_value(item, item_kind, from_text=from_text) for item in items]
        return tuple(converted) if origin in (tuple, Tuple) else converted
    return _convert_scalar(value, inner, from_text)


# ----------------------------------------------------------------------------- loading

def _unknown_key_error(key: str, valid: Sequence[str], where: str) -> ValueError:
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


def check_ranges(cfg: Any) -> None:
    """Range checks of the settings that several stage configs share, by name (those a config
    lacks are skipped), so that a bad value fails when the config is read, not deep in training."""
    def value(key: str) -> Any:
        return getattr(cfg, key, None)

    for key in ("load_size", "crop_size", "max_items"):
        if value(key) is not None and value(key) < 1:
            raise ValueError(f"{key} must be >= 1, got {value(key)}")
    if value("load_size") and value("crop_size") and value("crop_size") > value("load_size"):
        raise ValueError(f"crop_size = {value('crop_size')} is larger than load_size = {value('load_size')}; "
                         "the random crop is taken from the resized image")
    ratio = value("aspect_ratio")
    if ratio is not None and not (0 < ratio < float("inf")):
        raise ValueError(f"aspect_ratio must be a positive width / height (e.g. 1.0, or 2.0 for "
                         f"Cityscapes), got {ratio}")
    for key in ("lr", "lr_D", "init_gain"):
        if value(key) is not None and not value(key) > 0:
            raise ValueError(f"{key} must be > 0, got {value(key)}")
    for key in ("beta1", "beta2"):
        if value(key) is not None and not 0 <= value(key) < 1:
            raise ValueError(f"{key} must be in [0, 1), got {value(key)}")
    for key in ("pool_size", "holdout_items", "num_workers", "weight_decay", "latency_warmup", "shard"):
        if value(key) is not None and value(key) < 0:
            raise ValueError(f"{key} must be >= 0, got {value(key)}")
    for key in ("batch_size", "population", "generations", "latency_runs", "calibration_images",
                "kid_subsets", "width", "depth", "checkpoint_every", "num_shards", "cpu_threads",
                "latency_threads", "eval_max_images", "student_ngf"):
        if value(key) is not None and value(key) < 1:
            raise ValueError(f"{key} must be >= 1, got {value(key)}")
    for key in ("parents_fraction", "mutation_fraction", "mutate_prob"):
        if value(key) is not None and not 0 <= value(key) <= 1:
            raise ValueError(f"{key} is a fraction: it must be in [0, 1], got {value(key)}")
    for key in ("budget_macs", "budget_latency_ms"):
        if value(key) is not None and not value(key) > 0:
            raise ValueError(f"{key} must be > 0, got {value(key)}")
    if value("shard") is not None and value("num_shards") and value("shard") >= value("num_shards"):
        raise ValueError(f"shard = {value('shard')} must be below num_shards = {value('num_shards')}")
    lambdas = [k for k in getattr(cfg, "__dataclass_fields__", {}) if k.startswith("lambda_")]
    for key in lambdas:
        if value(key) < 0:
            raise ValueError(f"{key} must be >= 0, got {value(key)}")


def check_multiple(size_hw: Optional[Tuple[int, int]], factor: int, what: str) -> None:
    """ValueError unless both sides of ``size_hw`` are multiples of ``factor`` (e.g. ResNet
    generators: two stride-2 downsamplings, so 4)."""
    if size_hw is not None and (size_hw[0] % factor or size_hw[1] % factor):
        height, width = size_hw
        fit = [max(factor, (v // factor) * factor) for v in (height, width)]
        raise ValueError(f"{what}: {height}x{width} (height x width) must be multiples of {factor}; "
                         f"use e.g. {fit[0]}x{fit[1]} (crop_size / load_size and aspect_ratio)")


def read_toml_document(path: str, missing_hint: str = "see configs/ for examples") -> Dict[str, Any]:
    """A parsed TOML file (tables included); ValueError naming the file when it is unreadable."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"{path}: config file not found ({missing_hint})") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}); TOML files are UTF-8, re-save it "
                         "as UTF-8") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: a folder, not a config file ({missing_hint})") from None


def read_toml(path: str) -> Dict[str, Any]:
    """The key/value pairs of a flat TOML file; ValueError naming the file when it is unreadable."""
    data = read_toml_document(path)
    tables = [k for k, v in data.items() if isinstance(v, dict)]
    if tables:
        raise ValueError(f"{path}: tables ([{tables[0]}]) are not used; write every setting as a "
                         "top-level `key = value` line")
    return data


def parse_overrides(overrides: Sequence[str], types: Dict[str, Any]) -> List[Tuple[str, str]]:
    """``["--lr=1e-4", "--flip"]`` -> [("lr", "1e-4"), ("flip", "true")]; bare ``--key`` is only
    allowed for booleans. Dashes in keys are read as underscores (``--batch-size=4``)."""
    pairs = []
    for item in overrides:
        if not item.startswith("--"):
            raise ValueError(f"unexpected argument {item!r}: settings are given as --key=value")
        key, sep, text = item[2:].partition("=")
        key = key.replace("-", "_")
        if key not in types:
            raise _unknown_key_error(key, list(types), "command line")
        if not sep:
            if _unwrap_optional(types[key])[0] is not bool:
                raise ValueError(f"--{key} needs a value: --{key}=VALUE ({type_name(types[key])})")
            text = "true"
        pairs.append((key, text))
    return pairs


def load_config(cls: Type[T], path: Optional[str] = None, overrides: Sequence[str] = ()) -> T:
    """An instance of the dataclass ``cls``: defaults, then the TOML file at ``path``, then the
    ``--key=value`` ``overrides``. Raises ValueError naming the file/key for any bad input."""
    table = read_toml(path) if path is not None else {}
    return config_from_dict(cls, table, path, overrides)


def config_from_dict(cls: Type[T], table: Dict[str, Any], source: Optional[str] = None,
                     overrides: Sequence[str] = ()) -> T:
    """``load_config`` for settings already in memory: ``table`` holds TOML-typed values (as a TOML
    file would), checked and converted exactly as a file's; ``source`` names them in errors."""
    types = field_types(cls)
    values: Dict[str, Any] = {}
    for key, value in table.items():
        if key not in types:
            raise _unknown_key_error(key, list(types), str(source or "settings"))
        try:
            values[key] = convert_value(value, types[key])
        except (ValueError, TypeError) as error:
            raise ValueError(f"{source}: {key} = {value!r}: {error} ({type_name(types[key])})") from None
    for key, text in parse_overrides(overrides, types):
        try:
            values[key] = convert_value(text, types[key], from_text=True)
        except (ValueError, TypeError) as error:
            raise ValueError(f"--{key}={text}: {error} ({type_name(types[key])})") from None
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        where = f"{source}" if source else "the command line"
        raise ValueError(f"{where}: missing required setting(s) {', '.join(missing)} "
                         f"(add `{missing[0]} = ...` to the TOML file or --{missing[0]}=...)")
    try:
        return cls(**values)
    except ValueError as error:
        where = f"{source}" if source else "config"
        raise ValueError(f"{where}: {error}") from None


def config_dict(cfg: Any) -> Dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def diff_configs(a: Any, b: Any) -> Dict[str, Tuple[Any, Any]]:
    """{key: (a's value, b's value)} for every field that differs."""
    da, db = config_dict(a), config_dict(b)
    return {k: (da[k], db.get(k)) for k in da if da[k] != db.get(k)}


# ----------------------------------------------------------------------------- saving

def toml_value(value: Any) -> str:
    """``value`` written as a TOML value (TypeError for what TOML cannot hold, such as None)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are a subset of TOML basic-string escapes
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps_config(cfg: Any, header: str = "") -> str:
    """TOML text of ``cfg``; None values (TOML has no null) become commented ``# key = none``."""
    lines = [f"# {line}" for line in header.splitlines()]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        lines.append(f"# {f.name} = none" if value is None else f"{f.name} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def save_config(cfg: Any, path: str, header: str = "resolved configuration; load it with --config") -> None:
    """Write ``cfg`` to ``path`` (``.toml``, or ``.json`` by extension) atomically, replacing an
    older copy (the resolved config of a run belongs to that run's folder)."""
    from compress.common.atomic import atomic_write

    if str(path).endswith(".json"):
        text = json.dumps(config_dict(cfg), indent=2, sort_keys=True) + "\n"
    else:
        text = dumps_config(cfg, header)

    def write(temp: str) -> None:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)

    atomic_write(str(path), write, overwrite=True)


def describe_config(cls: type) -> str:
    """One line per key: name, type, default and help (for ``--help`` epilogs)."""
    types = field_types(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = "none" if f.default is None else toml_value(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = toml_value(f.default_factory())
        else:
            default = "(required)"
        lines.append(f"  {f.name} ({type_name(types[f.name])}, default {default}): "
                     f"{f.metadata.get('help', '')}")
    return "\n".join(lines)
