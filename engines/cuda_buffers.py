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
enforces this). Copies are queued on the backend's stream and may read or write the host array
at any time until ``synchronize()`` returns: the backend keeps each array alive until then, and
the caller must neither change an uploaded array nor read a downloaded one before it. Tests use
a numpy-backed fake with the same methods, and stand-ins for pycuda and polygraphy that run
queued work only at synchronize (tests/fakes).
"""
import ctypes
import ctypes.util
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
        """Queue a copy of the C-contiguous ``host`` array to ``ptr`` on the stream (it may read
        ``host`` as late as ``synchronize()``: leave it unchanged until then)."""
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
        libcuda = load_libcuda()  # pycuda links libcuda, so this only fails on a broken install
        if libcuda is None:
            raise RuntimeError("pycuda imports but the CUDA driver library (libcuda.so.1) does not "
                               "load through ctypes; check the NVIDIA driver installation")
        self._driver_stack = DriverContextStack(libcuda)
        # The primary context, made current on *this* thread (see the module docstring).
        self._context = cuda.Device(device_index).retain_primary_context()
        try:
            self._context.push()
            self._stream = cuda.Stream()
        except BaseException:
            self._release_context()
            raise
        self.stream_handle = int(self._stream.handle)
        self._allocations: Dict[int, object] = {}
        # pycuda's async copies hold no reference to the host array: keep each one alive here
        # until the stream has run the copy.
        self._pending: List[np.ndarray] = []

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
        self._pending.clear()  # only now: the queued copies are done with the arrays

    def close(self) -> None:
        if self._context is None:
            return
        for ptr in list(self._allocations):
            self.free(ptr)
        # Destroyed now, while its context is valid and current: pycuda destroys a stream in the
        # context it was made in, and only warns and leaks it once that context is detached.
        self._stream = None
        self._pending.clear()
        self._release_context()

    def _release_context(self) -> None:
        """Release our retain of the primary context and leave this thread's context stack as
        it was before ``__init__`` pushed it.

        What this relies on (pycuda's src/cpp/cuda.hpp, and the CUDA driver API reference):
        pycuda keeps its own per-thread stack of Context objects beside the driver's, and its
        Context.pop() pops both. ``detach()`` of a retained primary context calls
        cuDevicePrimaryCtxRelease, which "does not pop the context from the stack in any
        circumstances". So when the context is pycuda's current one, detach() drops it from
        pycuda's stack but the driver keeps it current (and pycuda pushes the next context of its
        stack, if any, on top); when it is not (e.g. after Context.pop(), the old order), detach()
        first pushes it to make it current. Either way the driver stack ends one entry of this
        context deeper than pycuda believes, and no pycuda call can pop it (Context.pop() refuses
        once pycuda's own stack is empty): the driver API pops it.
        """
        context, self._context = self._context, None
        handle = int(context.handle)
        context.detach()  # one detach per retain_primary_context() (cuDevicePrimaryCtxRelease)
        if self._driver_stack.current() != handle:
            # A pycuda whose detach pops: nothing left. (A non-primary context pushed through
            # pycuda after ours and still current would hide our entry under it; the project
            # pushes none.)
            return
        self._driver_stack.pop()
        # With two engines on this thread the entry just popped may have been the one pycuda
        # still counts on for the other engine (same primary context): give it back.
        survivor = self._cuda.Context.get_current()
        if survivor is not None and self._driver_stack.current() != int(survivor.handle):
            self._driver_stack.push(int(survivor.handle))


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


def load_libcuda():
    """The CUDA driver library through ctypes, or None where there is none."""
    for name in ("libcuda.so.1", "libcuda.so", ctypes.util.find_library("cuda"), "nvcuda.dll"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class DriverContextStack:
    """This thread's CUDA driver context stack (cuCtxGetCurrent/PopCurrent/PushCurrent), for
    what pycuda cannot do itself (see `PyCudaBuffers._release_context`)."""

    def __init__(self, libcuda):
        self._lib = libcuda

    @staticmethod
    def _check(call: str, status: int) -> None:
        if status != 0:
            raise RuntimeError(f"CUDA driver call {call} failed (CUresult {status}) while releasing "
                               "the primary context; the GPU may be in an error state (see nvidia-smi)")

    def current(self) -> Optional[int]:
        """The current context's handle, or None."""
        context = ctypes.c_void_p()
        self._check("cuCtxGetCurrent", self._lib.cuCtxGetCurrent(ctypes.byref(context)))
        return context.value

    def pop(self) -> None:
        context = ctypes.c_void_p()
        self._check("cuCtxPopCurrent", self._lib.cuCtxPopCurrent_v2(ctypes.byref(context)))

    def push(self, handle: int) -> None:
        # c_void_p, not a bare int: ctypes would pass an int as a 32-bit C int.
        self._check("cuCtxPushCurrent", self._lib.cuCtxPushCurrent_v2(ctypes.c_void_p(handle)))


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
