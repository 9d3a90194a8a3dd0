"""GPU memory and a CUDA stream for the TensorRT runner, from whichever CUDA library is present.

TensorRT's Python API takes raw device pointers (``set_tensor_address``) and a stream handle
(``execute_async_v3``) but allocates nothing itself. `DeviceBuffers` is the small protocol the
runner needs; three backends implement it, tried in this order by `open_device_buffers`:

1. **pycuda** (JetPack users often have it). It must use the device's *primary* context, the
   one TensorRT and every runtime-API library share, never ``pycuda.autoinit`` (a private
   context bound to the importing thread, which breaks Qt worker threads). This backend does
   what ``pycuda.autoprimaryctx`` does, but in the owning thread and undone in ``close()``
   there: autoprimaryctx pushes the context only onto the thread that first imports it and
   pops it from the main thread at exit, which fails when a worker thread did the import.
2. **polygraphy** (``polygraphy.cuda``: ctypes over libcudart, pure Python, no compilation;
   runtime API, so the primary context is current in any thread).
3. **torch** CUDA tensors, imported only in this fallback: the Jetson path must not need torch.

All calls of one `DeviceBuffers` must come from the thread that created it (the runner
enforces this). Copies are queued on the backend's stream; results are valid after
``synchronize()``. Tests use a numpy-backed fake with the same methods (tests/fakes).
"""
from typing import Dict, List, Optional

import numpy as np

BACKENDS = ("pycuda", "polygraphy", "torch")


class DeviceBuffers:
    """Protocol: device allocations, host<->device copies on one stream, and that stream."""

    backend = "none"
    stream_handle = 0  # the cudaStream_t as an int, for execute_async_v3

    def allocate(self, nbytes: int) -> int:
        """A device pointer to ``nbytes`` bytes (at least one)."""
        raise NotImplementedError

    def free(self, ptr: int) -> None:
        raise NotImplementedError

    def upload(self, ptr: int, host: np.ndarray) -> None:
        """Queue a copy of the C-contiguous ``host`` array to ``ptr`` on the stream."""
        raise NotImplementedError

    def download(self, host: np.ndarray, ptr: int) -> None:
        """Queue a copy from ``ptr`` into the C-contiguous ``host`` array (valid after synchronize)."""
        raise NotImplementedError

    def synchronize(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free every allocation and the stream; idempotent."""
        raise NotImplementedError


class PyCudaBuffers(DeviceBuffers):
    backend = "pycuda"

    def __init__(self, device_index: int = 0):
        import pycuda.driver as cuda
        cuda.init()
        self._cuda = cuda
        # The primary context, made current on *this* thread (see the module docstring).
        self._context = cuda.Device(device_index).retain_primary_context()
        self._context.push()
        self._stream = cuda.Stream()
        self.stream_handle = int(self._stream.handle)
        self._allocations: Dict[int, object] = {}
        self._pending: List[np.ndarray] = []  # host arrays queued copies still read or write

    def allocate(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(max(int(nbytes), 1))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def upload(self, ptr: int, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(ptr, host, self._stream)
        self._pending.append(host)

    def download(self, host: np.ndarray, ptr: int) -> None:
        self._cuda.memcpy_dtoh_async(host, ptr, self._stream)
        self._pending.append(host)

    def synchronize(self) -> None:
        self._stream.synchronize()
        self._pending.clear()

    def close(self) -> None:
        if self._context is None:
            return
        for ptr in list(self._allocations):
            self.free(ptr)
        self._stream = None
        self._cuda.Context.pop()
        self._context.detach()
        self._context = None


class PolygraphyBuffers(DeviceBuffers):
    backend = "polygraphy"

    def __init__(self, device_index: int = 0):
        from polygraphy import cuda
        self._kind = cuda.MemcpyKind
        self._runtime = cuda.wrapper()  # loads libcudart; raises when there is none
        if device_index:
            self._runtime.check(self._runtime.handle.cudaSetDevice(device_index))
        self.stream_handle = self._runtime.create_stream()
        self._allocations: List[int] = []
        self._pending: List[np.ndarray] = []
        self._closed = False

    def allocate(self, nbytes: int) -> int:
        ptr = self._runtime.malloc(max(int(nbytes), 1))
        self._allocations.append(ptr)
        return ptr

    def free(self, ptr: int) -> None:
        self._allocations.remove(ptr)
        self._runtime.free(ptr)

    def upload(self, ptr: int, host: np.ndarray) -> None:
        self._runtime.memcpy(ptr, host.ctypes.data, host.nbytes, self._kind.HostToDevice,
                             self.stream_handle)
        self._pending.append(host)

    def download(self, host: np.ndarray, ptr: int) -> None:
        self._runtime.memcpy(host.ctypes.data, ptr, host.nbytes, self._kind.DeviceToHost,
                             self.stream_handle)
        self._pending.append(host)

    def synchronize(self) -> None:
        self._runtime.stream_synchronize(self.stream_handle)
        self._pending.clear()

    def close(self) -> None:
        if self._closed:
            return
        for ptr in list(self._allocations):
            self.free(ptr)
        self._runtime.destroy_stream(self.stream_handle)
        self._closed = True


class TorchBuffers(DeviceBuffers):
    backend = "torch"

    def __init__(self, device_index: int = 0):
        import torch  # only here: the fallback when neither pycuda nor polygraphy works
        if not torch.cuda.is_available():
            raise RuntimeError("torch was built without CUDA or sees no GPU")
        self._torch = torch
        self._device = torch.device("cuda", device_index)
        torch.cuda.set_device(self._device)
        self._stream = torch.cuda.Stream(device=self._device)
        self.stream_handle = int(self._stream.cuda_stream)
        self._tensors: Dict[int, object] = {}
        self._pending: List[np.ndarray] = []

    def _bytes_of(self, host: np.ndarray):
        return self._torch.from_numpy(host.reshape(-1).view(np.uint8))

    def allocate(self, nbytes: int) -> int:
        tensor = self._torch.empty(max(int(nbytes), 1), dtype=self._torch.uint8, device=self._device)
        self._tensors[tensor.data_ptr()] = tensor
        return tensor.data_ptr()

    def free(self, ptr: int) -> None:
        del self._tensors[ptr]

    def upload(self, ptr: int, host: np.ndarray) -> None:
        source = self._bytes_of(host)
        with self._torch.cuda.stream(self._stream):
            self._tensors[ptr][: source.numel()].copy_(source, non_blocking=True)
        self._pending.append(host)

    def download(self, host: np.ndarray, ptr: int) -> None:
        target = self._bytes_of(host)
        with self._torch.cuda.stream(self._stream):
            target.copy_(self._tensors[ptr][: target.numel()], non_blocking=True)
        self._pending.append(host)

    def synchronize(self) -> None:
        self._stream.synchronize()
        self._pending.clear()

    def close(self) -> None:
        self._tensors.clear()
        self._pending.clear()


_CLASSES = {"pycuda": PyCudaBuffers, "polygraphy": PolygraphyBuffers, "torch": TorchBuffers}


def open_device_buffers(device_index: int = 0, backend: Optional[str] = None) -> DeviceBuffers:
    """The first backend that works here (pycuda, polygraphy, torch), or ``backend`` itself.
    Call from the thread that will use (and close) the buffers."""
    if backend is not None and backend not in _CLASSES:
        raise ValueError(f"unknown CUDA buffer backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    failures = []
    for name in [backend] if backend else BACKENDS:
        try:
            return _CLASSES[name](device_index)
        except ImportError as error:
            failures.append(f"{name}: not installed ({error})")
        except Exception as error:  # no driver/GPU, missing libcudart...: try the next backend
            failures.append(f"{name}: {type(error).__name__}: {error}")
    raise RuntimeError("no CUDA memory backend for TensorRT works here: install pycuda "
                       "(pip install pycuda, with /usr/local/cuda/bin on PATH), polygraphy "
                       "(pip install polygraphy) or torch with CUDA; tried " + "; ".join(failures))
