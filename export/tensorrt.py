"""ONNX generator -> TensorRT engine, cached per GPU and TensorRT version (8.5 to 11).

``python -m export.tensorrt model.onnx [-o model.engine] [--precision fp32|fp16|int8] ...``

An engine only runs on the GPU model and TensorRT version that built it, so engines are built
on the target (the Jetson itself) and cached under a key of (TensorRT version, GPU, precision,
shapes, DLA core, ONNX sha256) — see `export.trt_cache`. A cached engine that no longer
deserialises (driver or library change, truncated file) is rebuilt. ``-o`` also copies the
engine and its JSON sidecar (the ONNX metadata: arch, palette, input kind...) to a path of your
choice. ``--compare`` runs ONNX Runtime (CPU) and the engine on the same inputs through the
app's own runners (engines.onnx_engine, engines.tensorrt_engine) and prints the max/mean
absolute error.

`ensure_engine(onnx_path, ...)` is the library entry point (the app can call it to get an
engine path for the current machine). Nothing here imports torch: engines are built on Jetsons
that may not have it.
"""
import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from engines.cuda_buffers import DeviceBuffers, open_device_buffers
from engines.onnx_engine import OnnxRuntimeEngine
from engines.tensorrt_engine import (ENGINE_SUFFIXES, TensorRTEngine, TensorRTEngineError, trt_logger,
                                     read_sidecar, sidecar_path)
from export.trt_build import (PRECISIONS, BuildError, OnnxInfo, PrecisionError, PrecisionPlan,
                              TensorRTUnavailable, build_serialized_engine, convert_to_fp16,
                              import_tensorrt, precision_plan, read_onnx_info, resolve_profile)
from export.trt_cache import (SIDECAR_FORMAT, GpuUnavailable, atomic_write_bytes, atomic_write_json,
                              calibration_cache_path, default_cache_dir, engine_cache_path,
                              engine_key, gpu_identity, key_hash, sha256_file, timing_cache_path)
from export.trt_calibration import (CudaRuntimeUnavailable, calibration_batches,
                                    data_kind, input_preprocessor, make_calibrator,
                                    select_calibration_files)

DEFAULT_PRECISION = "fp16"  # the compressed demo engines default to FP16; INT8 is opt-in
DEFAULT_WORKSPACE_MB = 1024


@dataclass
class EngineResult:
    engine_path: str
    sidecar: Dict[str, Any]
    built: bool  # False: reused from the cache
    plan: PrecisionPlan


def deserialize_problem(trt, engine_path: str, dla_core: Optional[int] = None) -> Optional[str]:
    """None if ``engine_path`` deserialises with this TensorRT on this GPU, else why not.
    ``deserialize_cuda_engine`` returns None on a foreign/corrupt engine; some versions raise."""
    runtime = trt.Runtime(trt_logger(trt))  # the process's one logger (TensorRT keeps a single one)
    if dla_core is not None:
        runtime.DLA_core = dla_core
    with open(engine_path, "rb") as handle:
        data = handle.read()
    try:
        engine = runtime.deserialize_cuda_engine(data)
    except Exception as error:
        return f"deserialisation raised {type(error).__name__}: {error}"
    if engine is None:
        return f"TensorRT {trt.__version__} could not deserialise it"
    del engine
    return None


def ensure_engine(onnx_path: str, precision: str = DEFAULT_PRECISION, shapes: Optional[str] = None,
                  dla_core: Optional[int] = None, cache_dir: Optional[str] = None,
                  workspace_mb: int = DEFAULT_WORKSPACE_MB, calib_data: Optional[str] = None,
                  calib_count: int = 200, rebuild: bool = False, verbose: bool = False,
                  trt: Any = None, gpu: Optional[str] = None, cuda: Any = None,
                  log=print) -> EngineResult:
    """The cached engine of ``onnx_path`` for this machine, built first if missing or stale.

    ``trt``/``gpu``/``cuda`` default to the real tensorrt module, this GPU's name and
    polygraphy's CUDA wrapper for INT8 calibration (tests pass fakes). Raises
    TensorRTUnavailable, PrecisionError, ValueError (bad input, with what to fix),
    GpuUnavailable or BuildError.
    """
    trt = trt if trt is not None else import_tensorrt()
    info = read_onnx_info(onnx_path)
    plan = precision_plan(trt.__version__, precision, dla_core, info.is_fp16, info.has_qdq)
    if plan.calibrate and not calib_data:
        raise PrecisionError("INT8 calibration needs real inputs: pass --calib-data DIR (e.g. "
                             "shared/datasets/facades/256/val), or use --precision fp16")
    profile, dynamic = resolve_profile(info, shapes, dla_core)
    gpu = gpu or gpu_identity()
    cache_dir = cache_dir or default_cache_dir()
    onnx_sha = sha256_file(onnx_path)
    calib_files = _calibration_files(info, profile, calib_data, calib_count) if plan.calibrate else None
    key = engine_key(trt.__version__, gpu, precision, profile, dla_core, onnx_sha, calib_files)
    path = engine_cache_path(cache_dir, onnx_path, key)
    if not rebuild and os.path.isfile(path) and os.path.isfile(sidecar_path(path)):
        problem = deserialize_problem(trt, path, dla_core)
        if problem is None:
            return EngineResult(path, read_sidecar(path) or {}, built=False, plan=plan)
        log(f"cached engine {path} is unusable ({problem}); rebuilding it")

    stem = os.path.splitext(os.path.basename(onnx_path))[0]
    source = onnx_path
    if plan.convert_onnx_to_fp16:
        source = os.path.join(cache_dir, f"{stem}-fp16-{onnx_sha[:16]}.onnx")
        if not os.path.isfile(source):
            log(f"writing an FP16-typed copy of the ONNX for TensorRT {trt.__version__}: {source}")
            convert_to_fp16(onnx_path, source)
    calibrator, bar, calibration = None, None, None
    if plan.calibrate:
        calibrator, bar, calibration = _calibrator(trt, info, profile, calib_data, calib_files,
                                                   cache_dir, onnx_sha, gpu, cuda)
    log(f"building {precision} engine for {gpu} with TensorRT {trt.__version__} "
        "(a few minutes on a Jetson; later builds reuse the timing cache)")
    start = time.perf_counter()
    try:
        data = build_serialized_engine(trt, source, plan, profile, dynamic, workspace_mb,
                                       timing_cache_path(cache_dir, trt.__version__, gpu),
                                       calibrator, verbose)
    except BuildError:
        if calibration is not None:  # a failed calibration is the better reason, if there is one
            _check_calibration(calibrator, calibration, calib_data)
        raise
    finally:
        if calibrator is not None:
            calibrator.free()
            bar.close()
    if calibration is not None:
        calibration["batches_used"] = calibrator.batches_used
        _check_calibration(calibrator, calibration, calib_data)
    sidecar = {"format": SIDECAR_FORMAT, "metadata": info.metadata, "key": key_hash(key),
               "onnx": os.path.abspath(onnx_path), "onnx_sha256": onnx_sha, "built_from": source,
               "trt_version": trt.__version__, "gpu": gpu, "precision": precision,
               "dla_core": dla_core, "dynamic": dynamic, "workspace_mb": workspace_mb,
               "shapes": {n: [list(s) for s in t] for n, t in profile.items()},
               "plan": list(plan.builder_flags), "notes": list(plan.notes), "calibration": calibration,
               "build_seconds": round(time.perf_counter() - start, 2),
               "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_bytes(path, data, overwrite=True)  # a cache entry: rebuilt entries replace it
    atomic_write_json(sidecar_path(path), sidecar, overwrite=True)  # last: no sidecar = no cache hit
    return EngineResult(path, sidecar, built=True, plan=plan)


def _check_calibration(calibrator, calibration: Dict[str, Any], calib_data: str) -> None:
    """Raise BuildError when calibration failed or used no batch (TensorRT would have built from
    a partial table); the table is deleted first, so the next build calibrates again."""
    problem = calibrator.error or (None if calibration["table_reused"] or calibrator.batches_used
                                   else "no calibration batch was used")
    if problem is None:
        return
    if os.path.isfile(calibration["table"]):
        os.remove(calibration["table"])
    raise BuildError(f"INT8 calibration failed after {calibrator.batches_used} batch(es): {problem}; the "
                     f"partial calibration table was deleted. Fix the calibration data ({calib_data}) "
                     "and build again")


def _calibration_files(info: OnnxInfo, profile, calib_data: str, calib_count: int) -> List[str]:
    """The calibration images, chosen evenly from ``calib_data`` (part of the engine's key)."""
    preprocessor = input_preprocessor(info.metadata, profile[info.input_name][1], info.path)
    return select_calibration_files(calib_data, data_kind(preprocessor), calib_count)


def _calibrator(trt, info: OnnxInfo, profile, calib_data: str, files: List[str], cache_dir: str,
                onnx_sha: str, gpu: str, cuda):
    from tqdm import tqdm
    batch_shape = profile[info.input_name][1]  # calibration runs at the profile's opt shape
    preprocessor = input_preprocessor(info.metadata, batch_shape, info.path)
    cache = calibration_cache_path(cache_dir, info.path, onnx_sha, trt.__version__, gpu,
                                   batch_shape, files)
    cached = os.path.isfile(cache)
    bar = tqdm(total=len(files) // batch_shape[0], desc="INT8 calibration", unit="batch",
               disable=cached)
    batches = calibration_batches(files, preprocessor, batch_shape[0])
    calibrator = make_calibrator(trt, batches, batch_shape, cache, cuda=cuda,
                                 progress=lambda used: bar.update(1))
    return calibrator, bar, {"data": os.path.abspath(calib_data), "files": len(files),
                             "table": cache, "table_reused": cached}


# ----------------------------------------------------------------------------- compare

def compare_inputs(info: OnnxInfo, shapes: Dict[str, Any], data_dir: Optional[str] = None,
                   count: int = 4, seed: int = 0) -> List[np.ndarray]:
    """Inputs for --compare at the opt shape (real images from ``data_dir`` when given), plus
    the min and max shapes of a dynamic profile (synthetic)."""
    lo, opt, hi = (tuple(s) for s in shapes[info.input_name])
    kind = info.metadata.get("input_kind")
    rng = np.random.default_rng(seed)

    def synthetic(shape):
        n, c, h, w = shape
        if kind == "label" and c > 3:  # one-hot maps, as SPADE sees them
            ids = rng.integers(0, c, size=(n, h, w))
            return (np.arange(c)[None, :, None, None] == ids[:, None]).astype(np.float32)
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)

    if data_dir:
        preprocessor = input_preprocessor(info.metadata, opt, info.path)
        files = select_calibration_files(data_dir, data_kind(preprocessor), count * opt[0])
        batches = list(calibration_batches(files, preprocessor, opt[0]))
    else:
        batches = [synthetic(opt) for _ in range(count)]
    return batches + [synthetic(s) for s in {lo, hi} if s != opt]


def compare_with_onnxruntime(engine_path: str, onnx_path: str, inputs: List[np.ndarray],
                             buffers: Optional[DeviceBuffers] = None) -> Dict[str, float]:
    """Max/mean absolute difference between ONNX Runtime (CPU, float32) and the engine, both
    run by the app's own engines (`OnnxRuntimeEngine`, `TensorRTEngine`), so --compare checks
    the very code path that serves the demo. ``buffers``: device memory for the TensorRT
    engine (default `open_device_buffers`: pycuda, polygraphy or torch)."""
    with OnnxRuntimeEngine(onnx_path, device="cpu", spinning=False) as reference:
        expected = [reference.infer(x) for x in inputs]
    if buffers is None:
        try:
            buffers = open_device_buffers(0)
        except RuntimeError as error:  # no pycuda, polygraphy or CUDA torch: say what to install
            raise CudaRuntimeUnavailable(f"--compare: {error}") from None
    with TensorRTEngine(engine_path, buffers=buffers) as engine:
        actual = [engine.infer(x) for x in inputs]
    diffs = np.concatenate([np.abs(a - e).ravel() for a, e in zip(actual, expected)])
    return {"max_abs": float(diffs.max()), "mean_abs": float(diffs.mean()), "inputs": len(inputs)}


# ----------------------------------------------------------------------------- CLI

def copy_engine(result: EngineResult, output: str, force: bool) -> None:
    """Copy a cached engine and its sidecar to ``output`` (atomically, --force to replace)."""
    if os.path.abspath(output) == os.path.abspath(result.engine_path):
        return
    with open(result.engine_path, "rb") as handle:
        data = handle.read()
    atomic_write_bytes(output, data, overwrite=force)
    atomic_write_json(sidecar_path(output), dict(result.sidecar, cache_path=result.engine_path),
                      overwrite=force)


def _check_output(output: Optional[str], force: bool) -> None:
    if output is None:
        return
    if not output.endswith(ENGINE_SUFFIXES):
        raise ValueError(f"-o {output}: an engine file ends with {' or '.join(ENGINE_SUFFIXES)}")
    if os.path.exists(output) and not force:
        raise FileExistsError(f"{output} exists; pass --force to replace it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.tensorrt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a TensorRT engine (8.5 on Jetson Xavier up to 11) from an exported "
                    "generator ONNX. Engines are cached per GPU, TensorRT version, precision, "
                    "shapes, DLA core and ONNX content, and rebuilt when they stop deserialising.",
        epilog="examples:\n"
               "  python -m export.tensorrt model.onnx -o model.engine\n"
               "  python -m export.tensorrt model.onnx --precision fp32 --compare\n"
               "  python -m export.tensorrt model.onnx --shapes 128x128:256x256:512x512\n"
               "  python -m export.tensorrt model.onnx --precision int8 "
               "--calib-data shared/datasets/facades/256/val\n"
               "  python -m export.tensorrt model.onnx --dla-core 0 --shapes 256x256   # Xavier DLA")
    parser.add_argument("model", help="exported generator (.onnx, from python -m export.onnx)")
    parser.add_argument("-o", "--output", help="also copy the engine here (.engine/.plan) with "
                                               "its .json sidecar")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help=f"engine precision (default {DEFAULT_PRECISION}); on TensorRT 11 fp16 "
                             "builds from an FP16-typed copy of the ONNX and int8 needs a Q/DQ ONNX")
    parser.add_argument("--calib-data", help="folder of real inputs for INT8 calibration and "
                                             "--compare (label maps *.png or photos *.jpg)")
    parser.add_argument("--calib-count", type=int, default=200,
                        help="calibration images to use (default 200)")
    parser.add_argument("--dla-core", type=int, help="build for this DLA core (Jetson; needs fp16 "
                                                     "or int8 and static --shapes)")
    parser.add_argument("--shapes", help="HxW (static) or MINHxMINW:OPTHxOPTW:MAXHxMAXW (dynamic "
                                         "ONNX only); default: the model's resolution, static")
    parser.add_argument("--workspace", type=int, default=DEFAULT_WORKSPACE_MB,
                        help=f"builder workspace in MB (default {DEFAULT_WORKSPACE_MB})")
    parser.add_argument("--cache-dir", help=f"engine cache (default {default_cache_dir()})")
    parser.add_argument("--compare", action="store_true",
                        help="compare the engine with ONNX Runtime on the same inputs")
    parser.add_argument("--rebuild", action="store_true", help="build even if a cached engine fits")
    parser.add_argument("--force", action="store_true", help="overwrite the -o file if it exists")
    parser.add_argument("--verbose", action="store_true", help="TensorRT's verbose build log")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_output(args.output, args.force)
        if not os.path.isfile(args.model):
            raise FileNotFoundError(f"{args.model}: no such ONNX file; export one with "
                                    "python -m export.onnx")
        trt = import_tensorrt()
        result = ensure_engine(args.model, args.precision, args.shapes, args.dla_core,
                               args.cache_dir, args.workspace, args.calib_data, args.calib_count,
                               args.rebuild, args.verbose, trt=trt)
        side = result.sidecar
        how = f"built in {side.get('build_seconds', 0):.1f} s" if result.built else "reused from cache"
        print(f"engine: {result.engine_path} ({how})")
        shapes = side.get("shapes", {})
        dims = ", ".join(f"{n} " + " / ".join("x".join(map(str, s)) for s in t)
                         for n, t in shapes.items())
        print(f"  TensorRT {side.get('trt_version')} on {side.get('gpu')}, {side.get('precision')}, "
              f"{dims}" + (f", DLA core {args.dla_core}" if args.dla_core is not None else ""))
        for note in result.plan.notes:
            print(f"  note: {note}")
        if args.output:
            copy_engine(result, args.output, args.force)
            print(f"wrote {args.output} and {sidecar_path(args.output)}")
        if args.compare:
            info = read_onnx_info(args.model)
            inputs = compare_inputs(info, shapes, args.calib_data)
            stats = compare_with_onnxruntime(result.engine_path, args.model, inputs)
            print(f"compare ONNX Runtime (CPU, fp32) vs TensorRT {args.precision} on "
                  f"{stats['inputs']} inputs: max |diff| {stats['max_abs']:.5f}, "
                  f"mean |diff| {stats['mean_abs']:.6f} (outputs in [-1, 1])")
        return 0
    except (TensorRTUnavailable, GpuUnavailable, CudaRuntimeUnavailable, PrecisionError, ValueError,
            FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (BuildError, TensorRTEngineError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
