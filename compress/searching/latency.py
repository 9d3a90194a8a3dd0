"""Measured latency of generators, and a lookup table (LUT) that remembers the measurements.

MACs do not predict speed well on real hardware (depthwise-heavy sub-nets in particular; see
upstream issue #62), so the compression search can budget *measured* latency instead:

    measure = LatencyMeasurer(backend="onnxruntime", threads=1, warmup=10, runs=50)
    latency_ms = measure(subnet, (256, 256))        # median of the timed runs, milliseconds
    lut = LatencyLUT("runs/latency_lut.json")
    lut.get(lut.key(config, (256, 256), measure.describe()))

Backends here: ``onnxruntime`` and ``torch`` (eager PyTorch, the paper's latency.py convention).
``onnxruntime`` times exactly the graph that ships: the candidate goes through
`compress.models.onnx_graph` (`deployable_model` + `deployable_graph`, the functions
``export.onnx`` writes its files with: exporter, onnxslim, rewrites) with the options of the
shipped files (`SHIPPED_GRAPH`: the s2d output conv, reflect pads kept), and runs in a session configured by
`compress.common.onnx_contract.make_session_options`, the settings of the demo's ONNX Runtime
engine (``device="cuda"`` uses the CUDA execution provider where onnxruntime-gpu is installed).
compress/ may not import engines/ or export/ (one-way dependencies), so TensorRT timing is not
built in; any callable ``measure(model, (H, W)) -> latency_ms`` with a ``describe()`` dict can be
passed to the search instead, and a LUT filled elsewhere (same JSON format, e.g. on a Jetson) is
reused as it is.

The LUT is one JSON file, keyed by network, config, input size, backend, device, threads, host
and, for ``onnxruntime``, the graph recipe (`compress.models.onnx_graph.graph_recipe`: entries
timed on another graph are never reused), and written atomically after every new measurement; a
repeated search re-measures nothing.
"""
import json
import os
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from compress.common.atomic import atomic_write_text
from compress.common.onnx_contract import make_session_options
from compress.models import onnx_graph

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
    return onnx_graph.example_input(model, (height, width), 1, torch.Generator().manual_seed(seed))


class LatencyMeasurer:
    """``measure(model, (H, W))`` -> median latency in ms of batch-1 inference on one backend.

    Args:
        backend: "onnxruntime" or "torch" (see the module docstring).
        device: "cpu", or "cuda" / "cuda:N" (onnxruntime-gpu or a CUDA PyTorch).
        threads: intra-op threads (ONNX Runtime session / torch.set_num_threads during timing);
            None leaves the library default. Part of the LUT key: fix it for comparable numbers.
        warmup, runs: untimed warm-up runs, then timed runs; the median is returned.
        graph_options: ``onnxruntime`` only: options of `compress.models.onnx_graph.deployable_graph`
            (exporter, reflect_pad, output_conv); default `SHIPPED_GRAPH`, those of the shipped
            files. Set them to the ``export.onnx`` options you will ship with; part of the LUT key.
    """

    def __init__(self, backend: str = "onnxruntime", device: str = "cpu", threads: Optional[int] = 1,
                 warmup: int = 10, runs: int = 50, graph_options: Optional[Dict[str, str]] = None):
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
        self.graph_options = dict(onnx_graph.SHIPPED_GRAPH, **(graph_options or {}))
        unknown = sorted(set(self.graph_options) - set(onnx_graph.SHIPPED_GRAPH))
        if unknown:
            raise ValueError(f"unknown latency graph options {unknown}; valid: "
                             f"{', '.join(sorted(onnx_graph.SHIPPED_GRAPH))}")
        onnx_graph.check_graph_options(**self.graph_options)
        self.backend, self.device, self.threads = backend, device, threads
        self.warmup, self.runs = warmup, runs

    def describe(self) -> Dict[str, Any]:
        """What identifies a measurement in the LUT (runs/warm-up are not part of the key): for
        ``onnxruntime`` also the recipe of the timed graph (eager ``torch`` times no graph)."""
        setting = {"backend": self.backend, "device": self.device, "threads": self.threads,
                   "host": platform.node() or "unknown"}
        if self.backend == "onnxruntime":
            setting["graph"] = onnx_graph.graph_recipe(self.graph_options)
        return setting

    def __call__(self, model: nn.Module, size_hw: Sequence[int]) -> float:
        model = model.eval()
        example = example_input(model, size_hw)
        if self.backend == "torch":
            return statistics.median(self._time_torch(model, example))
        return statistics.median(self._time_onnxruntime(model, example))

    def graph(self, model: nn.Module, size_hw: Sequence[int]):
        """The ``onnx.ModelProto`` timed for ``model`` at ``size_hw``: the graph ``export.onnx``
        writes with these options, built by the same functions (without its metadata)."""
        deploy = onnx_graph.deployable_model(model.cpu())
        return onnx_graph.deployable_graph(deploy, size_hw, **self.graph_options)[0]

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
        # the session settings of the demo's ONNX Runtime engine (engines.onnx_engine)
        options = make_session_options(self.threads, "all")
        providers: List[Any] = ["CPUExecutionProvider"]
        if self.device != "cpu":
            index = self.device.partition(":")[2] or "0"
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(f"latency device {self.device!r} needs onnxruntime-gpu "
                                 "(CUDAExecutionProvider); use latency_device = \"cpu\"")
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        graph = self.graph(model, example.shape[2:])
        session = ort.InferenceSession(graph.SerializeToString(), options, providers=providers)
        feed = {session.get_inputs()[0].name: example.numpy().astype(np.float32)}
        return time_runs(lambda: session.run(None, feed), self.warmup, self.runs)


# ----------------------------------------------------------------------------- lookup table

class LatencyLUT:
    """Measured latencies in a JSON file: ``{"format", "entries": {key: entry}}``.

    Keys name the network, config, size and measurement setting, e.g.
    ``sub_mobile_resnet_9blocks(input_nc=3,...):16_16_32_16_32_32_16_16@256x256|onnxruntime|cpu|t1|myhost``
    followed, when the setting names one, by the timed graph's recipe
    (``|onnx1(exporter=auto,output_conv=s2d,reflect_pad=keep)``); an entry holds ``latency_ms``
    plus what it was measured with. ``path=None`` keeps the table in memory.

    Several LUT objects may share one file (a ladder's searches, one after the other): a miss
    re-reads the file before anyone measures, and a save merges what others wrote meanwhile.
    """

    def __init__(self, path: Optional[str] = None):
        self.path = path
        self.entries: Dict[str, Dict[str, Any]] = self._read()

    def _read(self) -> Dict[str, Dict[str, Any]]:
        path = self.path
        if not (path and os.path.isfile(path)):
            return {}
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable latency LUT ({error}); delete it to "
                             "measure again") from None
        if not isinstance(data, dict) or data.get("format") != LUT_FORMAT:
            raise ValueError(f"{path}: not a latency LUT (expected \"format\": \"{LUT_FORMAT}\")")
        return dict(data.get("entries", {}))

    @staticmethod
    def key(config: str, size_hw: Sequence[int], setting: Dict[str, Any], network: str = "") -> str:
        threads = setting.get("threads")
        prefix = f"{network}:" if network else ""
        # Entries written before the graph recipe was part of the key were timed on a plain
        # export (no onnxslim, no s2d output conv): their keys lack it, so they never match.
        graph = f"|{setting['graph']}" if setting.get("graph") else ""
        return (f"{prefix}{config}@{int(size_hw[0])}x{int(size_hw[1])}|{setting['backend']}"
                f"|{setting['device']}|t{threads if threads is not None else 'default'}"
                f"|{setting.get('host', 'unknown')}{graph}")

    def get(self, key: str) -> Optional[float]:
        if key not in self.entries:
            self.entries = {**self._read(), **self.entries}  # measured by another LUT object?
        entry = self.entries.get(key)
        return None if entry is None else float(entry["latency_ms"])

    def put(self, key: str, latency_ms: float, **info: Any) -> None:
        self.entries[key] = dict(info, latency_ms=float(latency_ms),
                                 measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.save()

    def save(self) -> None:
        if not self.path:
            return
        self.entries = {**self._read(), **self.entries}  # keep what others wrote meanwhile
        text = json.dumps({"format": LUT_FORMAT, "entries": self.entries}, indent=1, sort_keys=True)
        atomic_write_text(self.path, text + "\n", overwrite=True)

    def __len__(self) -> int:
        return len(self.entries)


def cached_latency(lut: LatencyLUT, measure: Callable[..., float], config: str, size_hw: Tuple[int, int],
                   build: Callable[[], nn.Module], network: str = "") -> Tuple[float, bool]:
    """(latency_ms, True if it was measured now) for ``config``: from the LUT, else measured on
    ``build()`` (a standalone sub-network) and stored. ``measure`` must offer ``describe()``;
    ``network`` names the architecture the config belongs to (see `network_tag`)."""
    known = lut.get(lut.key(config, size_hw, _setting(measure), network))
    if known is not None:
        return known, False
    latency_ms = float(measure(build(), size_hw))
    if not latency_ms > 0:
        raise ValueError(f"latency measurement of {config} returned {latency_ms} ms")
    _store(lut, measure, config, size_hw, network, latency_ms)
    return latency_ms, True


def _setting(measure: Callable[..., float]) -> Dict[str, Any]:
    return measure.describe() if hasattr(measure, "describe") else {"backend": "custom", "device": "?"}


def _store(lut: LatencyLUT, measure: Callable[..., float], config: str, size_hw: Tuple[int, int],
           network: str, latency_ms: float, **extra: Any) -> None:
    setting = _setting(measure)
    lut.put(lut.key(config, size_hw, setting, network), latency_ms, config=config, network=network,
            size=[int(size_hw[0]), int(size_hw[1])], **extra, **setting)


def remeasured_latency(measure: Callable[..., float], lut: LatencyLUT, config: str, size_hw: Tuple[int, int],
                       build: Callable[[], nn.Module], network: str, repeats: int) -> float:
    """The median of the LUT's timing of ``config`` (if any) and ``repeats`` new ones, stored back
    in the LUT with every run (``runs_ms``) so that later reads agree: one timing on a busy or
    throttling CPU can be off by a quarter, which matters where a choice hangs on it."""
    first, _ = cached_latency(lut, measure, config, size_hw, build, network)  # timed now if unknown
    model = build() if repeats > 0 else None  # one sub-network for all the repeats
    runs = [first] + [float(measure(model, size_hw)) for _ in range(repeats)]
    latency_ms = statistics.median(runs)
    _store(lut, measure, config, size_hw, network, latency_ms, runs_ms=runs)
    return latency_ms


def network_tag(supernet: nn.Module) -> str:
    """The sub-network architecture of ``supernet`` without the config (of a plain generator,
    e.g. a teacher: its own architecture), e.g.
    ``sub_mobile_resnet_9blocks(input_nc=3,n_blocks=9,ngf=64,output_nc=3)``: a config string
    alone does not say which network it slices (SPADE and ResNet configs both have 8 numbers)."""
    from compress.models.checkpoints import build_kwargs_of
    from compress.models import arch_name
    kwargs = {k: v for k, v in build_kwargs_of(supernet).items() if k != "config"}
    return (arch_name(supernet).replace("super_", "sub_", 1) + "("
            + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")")
