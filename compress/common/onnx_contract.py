"""What the ONNX exporter, the latency search and the ONNX Runtime engine must agree on.

- the contract of every exported generator file: tensor names (`INPUT_NAME`, `OUTPUT_NAME`),
  the ``metadata_props`` key of its checkpoint metadata (`METADATA_KEY`) and the largest side a
  model may claim (`MAX_MODEL_SIDE`);
- the ONNX Runtime session settings (`make_session_options`): the engine the app and
  ``engines.bench`` run, and the compression search that times candidates, build their sessions
  with this one function, so a latency budget is met by what actually runs.

One definition importable from both sides: ``engines`` re-exports these (compress never imports
engines), and nothing here imports torch or onnx (the Jetson runtime path uses it), while
onnxruntime is imported only when a session is configured.
"""
from typing import Optional

METADATA_KEY = "gan_compression"  # ONNX metadata_props key holding the checkpoint metadata (JSON)
INPUT_NAME, OUTPUT_NAME = "input", "output"  # tensor names of every exported generator
MAX_MODEL_SIDE = 8192  # largest height or width a model may claim (export bound; the app's canvas)

# Graph optimisation levels by name ("all" also enables ORT's layout (NCHWc) transformations).
OPTIMIZATION_NAMES = ("disable", "basic", "extended", "all")


def import_ort():
    """The onnxruntime module, or ImportError saying which package to install."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("ONNX Runtime is not installed: pip install onnxruntime "
                          "(CPU) or onnxruntime-gpu (CUDA/TensorRT)") from None
    return onnxruntime


def optimization_level(name: str):
    """ORT GraphOptimizationLevel for "disable" | "basic" | "extended" | "all"."""
    ort = import_ort()
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if name not in levels:
        raise ValueError(f"unknown graph optimisation level {name!r}; valid: "
                         f"{', '.join(OPTIMIZATION_NAMES)}")
    return levels[name]


def make_session_options(threads: Optional[int] = None, optimization: str = "all",
                         spinning: bool = True):
    """Session options: intra-op ``threads`` (None: ORT's default, one per physical core),
    graph optimisation level, sequential execution (a generator is one chain of ops).

    ``spinning=False`` stops idle pool threads from busy-waiting between ops: slightly slower
    on an idle machine, much faster when other processes (or the GUI thread) share the cores;
    on a loaded 2-core machine it cut 2-thread wall time from 362 to 226 ms (sub-net, 256px)."""
    ort = import_ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = optimization_level(optimization)
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return options
