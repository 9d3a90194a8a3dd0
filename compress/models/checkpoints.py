"""Generator checkpoints: the project's safetensors format and the official ``.pth`` files.

The project's format is a safetensors file whose header metadata carries everything needed to
rebuild and use the generator: architecture and build arguments (config string, ngf, channel
counts), resolution, palette name, input kind, MACs and params. ``load_generator(path)``
rebuilds the model from that alone. Official GAN Compression checkpoints are plain state_dicts
without metadata; they are read with ``torch.load(weights_only=True)`` (never executing pickled
code) and need ``arch``/``config``, which are guessed from the tensor shapes when not given.

The command line (convert / inspect) is ``compress/checkpoints.py``.
"""
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from compress.common.atomic import atomic_write
from compress.models import GENERATORS, arch_name, build_generator
from compress.models.resnet import block_group
from compress.models.search_space import encode_config

FORMAT = "gan-compression-generator/1"
INPUT_KINDS = ("label", "sketch", "image")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the requested architecture."""


class MetadataError(CheckpointError):
    """A project checkpoint whose metadata header is missing or not a JSON object."""


# ----------------------------------------------------------------------------- build arguments

def build_kwargs_of(model: nn.Module) -> Dict[str, Any]:
    """The `build_generator` keyword arguments that rebuild ``model``'s architecture."""
    arch = arch_name(model)
    if model.family == "resnet":
        kwargs = {"input_nc": model.input_nc, "output_nc": model.output_nc,
                  "n_blocks": len(model.widths.inner)}
        if arch in ("sub_mobile_resnet_9blocks", "legacy_sub_mobile_resnet_9blocks"):
            kwargs["config"] = model.config
        else:
            kwargs["ngf"] = model.ngf
    else:
        kwargs = {"semantic_nc": model.semantic_nc, "output_nc": model.output_nc, "ngf": model.ngf,
                  "crop_size": model.crop_size, "aspect_ratio": model.aspect_ratio,
                  "num_upsampling_layers": model.num_upsampling_layers}
        if arch == "sub_mobile_spade":
            kwargs["config"] = model.config
        if arch == "spade" and any(k.endswith(".weight_orig") for k in model.state_dict()):
            kwargs["spectral_norm"] = True
    if arch.startswith("super_"):
        kwargs["config"] = model.config
    return kwargs


def default_resolution(model: nn.Module) -> Tuple[int, int]:
    if model.family == "spade":
        return int(round(model.crop_size / model.aspect_ratio)), int(model.crop_size)
    return 256, 256


# ----------------------------------------------------------------------------- shape inference

def guess_architecture(state_dict: Dict[str, torch.Tensor]) -> List[Tuple[str, Dict[str, Any]]]:
    """Candidate (arch, kwargs) pairs that fit the tensor shapes of an official state_dict,
    most likely first. Empty when the shapes fit no zoo generator."""
    sd = state_dict
    if "fc.weight" in sd and "conv_img.weight" in sd:  # SPADE family
        width, semantic_nc = sd["fc.weight"].shape[:2]
        ngf = sd["conv_img.weight"].shape[1]
        kwargs = {"semantic_nc": int(semantic_nc), "ngf": int(ngf)}
        separable = any(".mlp_gamma.conv.0." in k for k in sd)
        if not separable:
            if any(k.endswith(".weight_orig") for k in sd):
                kwargs["spectral_norm"] = True
            return [("spade", kwargs)]
        if width == 16 * ngf:
            return [("mobile_spade", kwargs), ("super_mobile_spade", kwargs)]
        return [("sub_mobile_spade", dict(kwargs, config="<8 numbers, see the shapes>"))]
    if "model.1.weight" not in sd or "model.7.weight" not in sd:
        return []
    blocks = sorted({int(k.split(".")[1]) for k in sd if ".conv_block." in k})
    io = {"input_nc": int(sd["model.1.weight"].shape[1])}
    out_key = f"model.{blocks[-1] + 8}.weight" if blocks else None
    if out_key in sd:
        io["output_nc"] = int(sd[out_key].shape[0])
    if blocks and len(blocks) != 9:
        io["n_blocks"] = len(blocks)
    stem, down1, trunk = (int(sd[f"model.{i}.weight"].shape[0]) for i in (1, 4, 7))
    if f"model.{blocks[0]}.conv_block.1.weight" in sd:
        return [("resnet_9blocks", dict(io, ngf=stem))]
    inner = [int(sd[f"model.{b}.conv_block.1.conv.2.weight"].shape[0]) for b in blocks]
    up1 = int(sd[f"model.{blocks[-1] + 1}.weight"].shape[1])
    up2 = int(sd[f"model.{blocks[-1] + 4}.weight"].shape[1])
    widths = [stem, down1 // 2, trunk // 4] + [w // 4 for w in inner] + [up1 // 2, up2]
    if len(set(widths)) == 1:
        return [("mobile_resnet_9blocks", dict(io, ngf=stem)),
                ("super_mobile_resnet_9blocks", dict(io, ngf=stem))]
    n = len(inner)
    firsts = [i for i in range(n) if i == 0 or block_group(i, n) != block_group(i - 1, n)]
    candidates = []
    if all(inner[i] == inner[firsts[block_group(i, n)]] for i in range(n)):
        config = [stem, down1 // 2, trunk // 4] + [inner[i] // 4 for i in firsts] + [up1 // 2, up2]
        candidates.append(("sub_mobile_resnet_9blocks", dict(io, config=encode_config(config))))
    others = [inner[i] for i in range(n) if i not in firsts]
    if all(w == trunk for w in others) and len(set(inner[i] for i in firsts)) == 1:
        config = [stem, down1 // 2, trunk // 4, inner[0] // 4, up1 // 2, up2]
        candidates.append(("legacy_sub_mobile_resnet_9blocks", dict(io, config=encode_config(config))))
    return candidates


def describe_candidates(candidates: List[Tuple[str, Dict[str, Any]]]) -> str:
    return "; ".join(f"arch={arch} " + " ".join(f"{k}={v}" for k, v in kw.items())
                     for arch, kw in candidates)


# ----------------------------------------------------------------------------- reading

def read_state_dict(path: str, ignore_metadata: bool = False
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Tensors and project metadata (empty for official files) of a checkpoint file;
    ``ignore_metadata`` skips a broken metadata header (convert rewrites it)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file, safe_open
        try:
            with safe_open(path, framework="pt") as handle:
                header = handle.metadata() or {}
            tensors = load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a readable safetensors file ({error}); "
                                  "the file may be truncated, re-export or re-download it") from None
        return tensors, ({} if ignore_metadata else _project_metadata(header, path))
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); the download or copy was cut off")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError/RuntimeError/EOFError variously
        text = str(error)
        if "Unsupported global" in text:  # a well-formed pickle that names Python classes
            reason = ("it contains pickled Python objects beyond tensors, which this project "
                      "never executes; re-save it as a plain state_dict")
        else:
            detail = text.split("WeightsUnpickler error:")[-1]  # torch's own reason, not its advice
            first = next((line.strip() for line in detail.splitlines() if line.strip()),
                         type(error).__name__)
            reason = f"the file is corrupt, truncated or not a PyTorch checkpoint ({first[:200]})"
        raise CheckpointError(f"{path}: cannot load: {reason}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a generator state_dict (expected a dict of tensors)")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}, {}


def _project_metadata(header: Dict[str, str], path: str) -> Dict[str, Any]:
    """The project's metadata from a safetensors header ({} for files of other tools)."""
    if header.get("format") != FORMAT:
        return {}
    fix = (f"re-save it: python -m compress.checkpoints convert {path} -o NEW.safetensors --arch ARCH "
           "(plus --palette / --input-kind)")
    try:
        meta = json.loads(header["meta"])
    except KeyError:
        raise MetadataError(f"{path}: says it is a {FORMAT} file but has no 'meta' header; {fix}") from None
    except ValueError as error:
        raise MetadataError(f"{path}: its 'meta' header is not valid JSON ({error}); {fix}") from None
    if not isinstance(meta, dict):
        raise MetadataError(f"{path}: its 'meta' header is a JSON {type(meta).__name__}, not an "
                            f"object; {fix}")
    return meta


def _mismatch_report(path: str, model: nn.Module, state: Dict[str, torch.Tensor],
                     arch: str, kwargs: Dict[str, Any]) -> Optional[str]:
    """None when ``state`` fits ``model`` exactly, else a message naming what differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return None
    lines = [f"{path} does not fit {arch} "
             f"({' '.join(f'{k}={v}' for k, v in kwargs.items())}):"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:5])}"
                     + (" ..." if len(missing) > 5 else ""))
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:5])}"
                     + (" ..." if len(unexpected) > 5 else ""))
    for key, got, want in shapes[:5]:
        lines.append(f"  {key}: checkpoint {got} vs model {want}")
    candidates = guess_architecture(state)
    if candidates:
        lines.append(f"  the shapes fit: {describe_candidates(candidates)}")
    return "\n".join(lines)


def load_generator(path: str, strict: bool = True, ignore_metadata: bool = False,
                   **overrides) -> Tuple[nn.Module, Dict[str, Any]]:
    """Load a generator from the project's ``.safetensors`` or an official ``.pth`` file.

    ``overrides`` are `build_generator` arguments plus ``arch``; official files need ``arch``
    (and ``config`` for sub-networks) unless their shapes identify them unambiguously.
    Returns ``(model in eval mode, metadata)``. Raises CheckpointError naming the file.
    """
    state, meta = read_state_dict(path, ignore_metadata)
    build = dict(meta.get("build", {}))
    arch = overrides.pop("arch", None) or meta.get("arch")
    build.update({k: v for k, v in overrides.items() if v is not None})
    if arch is None:
        candidates = guess_architecture(state)
        if not candidates:
            raise CheckpointError(f"{path}: tensor names fit no generator of the zoo; pass arch= "
                                  f"one of {', '.join(GENERATORS)}")
        arch, guessed = candidates[0]
        if len(candidates) > 1 and not candidates[0][0].startswith("mobile_"):
            raise CheckpointError(f"{path} has no metadata and several architectures fit: "
                                  f"{describe_candidates(candidates)}; pass arch= (and config=)")
        build = dict(guessed, **build)
    try:
        model = build_generator(arch, **build)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    report = _mismatch_report(path, model, state, arch, build)
    if report and strict:
        raise CheckpointError(report)
    model.load_state_dict(state, strict=strict)
    model.eval()
    meta = dict(meta, arch=arch, build=build_kwargs_of(model))
    return model, meta


# ----------------------------------------------------------------------------- writing

def generator_metadata(model: nn.Module, resolution: Optional[Tuple[int, int]] = None,
                       palette: Optional[str] = None, input_kind: Optional[str] = None,
                       profile: bool = True, **extra) -> Dict[str, Any]:
    """Metadata for ``model``: architecture, build arguments, resolution, MACs and params."""
    from compress.models.profile import count_macs
    if input_kind is not None and input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {', '.join(INPUT_KINDS)}, got {input_kind!r}")
    height, width = resolution or default_resolution(model)
    meta: Dict[str, Any] = {"arch": arch_name(model), "build": build_kwargs_of(model),
                            "resolution": [height, width], "palette": palette,
                            "input_kind": input_kind or ("label" if model.family == "spade" else None)}
    if profile:
        meta.update(count_macs(model, (1, model.input_nc, height, width)))
    meta.update(extra)
    return meta


def save_generator(model: nn.Module, path: str, meta: Optional[Dict[str, Any]] = None,
                   overwrite: bool = False, **meta_kwargs) -> Dict[str, Any]:
    """Write ``model`` as ``.safetensors`` with metadata (atomically). Returns the metadata."""
    from safetensors.torch import save_file
    if not path.endswith(".safetensors"):
        raise ValueError(f"{path}: the project's checkpoint format is .safetensors")
    meta = dict(meta) if meta is not None else generator_metadata(model, **meta_kwargs)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "meta": json.dumps(meta, sort_keys=True)}
    atomic_write(path, lambda temp: save_file(tensors, temp, metadata=header), overwrite=overwrite)
    return meta


# ----------------------------------------------------------------------------- CLI
