"""Measured latency of generators, and a lookup table (LUT) that remembers the measurements.

MACs do not predict speed well on real hardware (depthwise-heavy sub-nets in particular; see
upstream issue #62), so the compression search can budget *measured* latency instead:

    measure = LatencyMeasurer(backend="onnxruntime", threads=1, warmup=10, runs=50)
    latency_ms = measure(subnet, (256, 256))        # median of the timed runs, milliseconds
    lut = LatencyLUT("runs/latency_lut.json")
    lut.get(lut.key(config, (256, 256), measure.describe()))

Backends here: ``onnxruntime`` (the candidate is exported to ONNX in a temporary folder and run
in an ONNX Runtime session: the deployment path of the demo on a CPU; ``device="cuda"`` uses
the CUDA execution provider where onnxruntime-gpu is installed) and ``torch`` (eager PyTorch,
the paper's latency.py convention). compress/ may not import engines/ or export/ (one-way
dependencies), so TensorRT timing is not built in; any callable ``measure(model, (H, W)) ->
latency_ms`` with a ``describe()`` dict can be passed to the search instead, and a LUT filled
elsewhere (same JSON format, e.g. on a Jetson) is reused as it is.

The LUT is one JSON file, keyed by network, config, input size, backend, device, threads and
host, and written atomically after every new measurement; a repeated search re-measures nothing.
"""
import inspect
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from compress.common.atomic import atomic_write_text

BACKENDS = ("onnxruntime", "torch")
LUT_FORMAT = "gan-compression-latency-lut/1"


def time_runs(run: Callable[[], Any], warmup: int, runs: int,
              synchronize: Optional[Callable[[], None]] = None) -> List[float]:
    """Call ``run`` ``warmup`` times untimed, then ``runs`` times; the wall times in ms."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        run()
    if synchronize is not None:
        synchronize()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        if synchronize is not None:
            synchronize()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def example_input(model: nn.Module, size_hw: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A valid batch-1 input: an image in [-1, 1] (ResNet family) or a one-hot label map (SPADE)."""
    height, width = (int(v) for v in size_hw)
    generator = torch.Generator().manual_seed(seed)
    if getattr(model, "family", "resnet") == "spade":
        labels = torch.randint(0, model.input_nc, (1, height, width), generator=generator)
        return nn.functional.one_hot(labels, model.input_nc).permute(0, 3, 1, 2).float()
    return torch.rand(1, model.input_nc, height, width, generator=generator) * 2 - 1


def _export_for_timing(model: nn.Module, example: torch.Tensor, path: str) -> None:
    """A plain opset-17 ONNX export (TorchScript exporter where it exists) of ``model``."""
    kwargs: Dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # writes true opset 17; the dynamo exporter would need a downgrade
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        torch.onnx.export(model, (example,), path, opset_version=17, input_names=["input"],
                          output_names=["output"], do_constant_folding=True, **kwargs)


class LatencyMeasurer:
    """``measure(model, (H, W))`` -> median latency in ms of batch-1 inference on one backend.

    Args:
        backend: "onnxruntime" or "torch" (see the module docstring).
        device: "cpu", or "cuda" / "cuda:N" (onnxruntime-gpu or a CUDA PyTorch).
        threads: intra-op threads (ONNX Runtime session / torch.set_num_threads during timing);
            None leaves the library default. Part of the LUT key: fix it for comparable numbers.
        warmup, runs: untimed warm-up runs, then timed runs; the median is returned.
    """

    def __init__(self, backend: str = "onnxruntime", device: str = "cpu", threads: Optional[int] = 1,
                 warmup: int = 10, runs: int = 50):
        if backend not in BACKENDS:
            raise ValueError(f"latency backend must be one of {', '.join(BACKENDS)}, got {backend!r} "
                             "(TensorRT timing: pass your own measure callable, see "
                             "compress.searching.latency)")
        if not (device == "cpu" or device.split(":")[0] == "cuda"):
            raise ValueError(f"latency device must be cpu, cuda or cuda:N, got {device!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"latency threads must be >= 1, got {threads}")
        if runs < 1 or warmup < 0:
            raise ValueError(f"latency runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
        self.backend, self.device, self.threads = backend, device, threads
        self.warmup, self.runs = warmup, runs

    def describe(self) -> Dict[str, Any]:
        """What identifies a measurement in the LUT (runs/warm-up are not part of the key)."""
        return {"backend": self.backend, "device": self.device, "threads": self.threads,
                "host": platform.node() or "unknown"}

    def __call__(self, model: nn.Module, size_hw: Sequence[int]) -> float:
        model = model.eval()
        example = example_input(model, size_hw)
        if self.backend == "torch":
            return statistics.median(self._time_torch(model, example))
        return statistics.median(self._time_onnxruntime(model, example))

    def _time_torch(self, model: nn.Module, example: torch.Tensor) -> List[float]:
        device = torch.device(self.device)
        model, example = model.to(device), example.to(device)
        previous = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        try:
            with torch.inference_mode():
                return time_runs(lambda: model(example), self.warmup, self.runs, sync)
        finally:
            torch.set_num_threads(previous)
            model.to("cpu")

    def _time_onnxruntime(self, model: nn.Module, example: torch.Tensor) -> List[float]:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        providers: List[Any] = ["CPUExecutionProvider"]
        if self.device != "cpu":
            index = self.device.partition(":")[2] or "0"
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"latency device {self.device!r} needs onnxruntime-gpu "
                                 "(CUDAExecutionProvider); use latency_device = \"cpu\"")
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        with tempfile.TemporaryDirectory(prefix="latency-") as scratch:
            path = os.path.join(scratch, "candidate.onnx")
            _export_for_timing(model.cpu(), example, path)
            session = ort.InferenceSession(path, options, providers=providers)
        feed = {session.get_inputs()[0].name: example.numpy().astype(np.float32)}
        return time_runs(lambda: session.run(None, feed), self.warmup, self.runs)


# ----------------------------------------------------------------------------- lookup table

class LatencyLUT:
    """Measured latencies in a JSON file: ``{"format", "entries": {key: entry}}``.

    Keys name the network, config, size and measurement setting, e.g.
    ``sub_mobile_resnet_9blocks(input_nc=3,...):16_16_32_16_32_32_16_16@256x256|onnxruntime|cpu|t1|myhost``;
    an entry holds ``latency_ms`` plus what it was measured with. ``path=None`` keeps the table
    in memory.
    """

    def __init__(self, path: Optional[str] = None):
        self.path = path
        self.entries: Dict[str, Dict[str, Any]] = {}
        if path and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError) as error:
                raise ValueError(f"{path}: not a readable latency LUT ({error}); delete it to "
                                 "measure again") from None
            if not isinstance(data, dict) or data.get("format") != LUT_FORMAT:
                raise ValueError(f"{path}: not a latency LUT (expected \"format\": \"{LUT_FORMAT}\")")
            self.entries = dict(data.get("entries", {}))

    @staticmethod
    def key(config: str, size_hw: Sequence[int], setting: Dict[str, Any], network: str = "") -> str:
        threads = setting.get("threads")
        prefix = f"{network}:" if network else ""
        return (f"{prefix}{config}@{int(size_hw[0])}x{int(size_hw[1])}|{setting['backend']}"
                f"|{setting['device']}|t{threads if threads is not None else 'default'}"
                f"|{setting.get('host', 'unknown')}")

    def get(self, key: str) -> Optional[float]:
        entry = self.entries.get(key)
        return None if entry is None else float(entry["latency_ms"])

    def put(self, key: str, latency_ms: float, **info: Any) -> None:
        self.entries[key] = dict(info, latency_ms=float(latency_ms),
                                 measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.save()

    def save(self) -> None:
        if not self.path:
            return
        text = json.dumps({"format": LUT_FORMAT, "entries": self.entries}, indent=1, sort_keys=True)
        atomic_write_text(self.path, text + "\n", overwrite=True)

    def __len__(self) -> int:
        return len(self.entries)


def cached_latency(lut: LatencyLUT, measure: Callable[..., float], config: str, size_hw: Tuple[int, int],
                   build: Callable[[], nn.Module], network: str = "") -> Tuple[float, bool]:
    """(latency_ms, True if it was measured now) for ``config``: from the LUT, else measured on
    ``build()`` (a standalone sub-network) and stored. ``measure`` must offer ``describe()``;
    ``network`` names the architecture the config belongs to (see `network_tag`)."""
    setting = measure.describe() if hasattr(measure, "describe") else {"backend": "custom", "device": "?"}
    key = lut.key(config, size_hw, setting, network)
    known = lut.get(key)
    if known is not None:
        return known, False
    latency_ms = float(measure(build(), size_hw))
    if not latency_ms > 0:
        raise ValueError(f"latency measurement of {config} returned {latency_ms} ms")
    lut.put(key, latency_ms, config=config, network=network, size=[int(size_hw[0]), int(size_hw[1])],
            **setting)
    return latency_ms, True


def network_tag(supernet: nn.Module) -> str:
    """The sub-network architecture of ``supernet`` without the config, e.g.
    ``sub_mobile_resnet_9blocks(input_nc=3,n_blocks=9,ngf=64,output_nc=3)``: a config string
    alone does not say which network it slices (SPADE and ResNet configs both have 8 numbers)."""
    from compress.models.checkpoints import build_kwargs_of
    from compress.models import arch_name
    kwargs = {k: v for k, v in build_kwargs_of(supernet).items() if k != "config"}
    return (arch_name(supernet).replace("super_", "sub_", 1) + "("
            + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")")
