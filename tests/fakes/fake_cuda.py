"""Fake GPU memory for CPU-only tests: device pointers backed by numpy, strict about misuse.

A "device pointer" is the real address of a numpy buffer registered in `MEMORY`, so host<->device
copies are plain memmoves, but every device-side access is checked against the registered
blocks: a host pointer passed where a device pointer belongs, an overrun, a double free or a
leak fails the test instead of corrupting memory. Three fronts share `MEMORY`:

- `FakeDeviceBuffers`: the `engines.cuda_buffers.DeviceBuffers` protocol. Downloads land only at
  ``synchronize()`` (like a real async copy), and every call must come from the creating thread.
- `fake_polygraphy_cuda()`: a stand-in for the ``polygraphy.cuda`` module (``wrapper()`` with
  malloc/free/memcpy/streams, ``MemcpyKind``) used by export's calibrator and --compare.
- `install_fake_pycuda(modules)`: ``pycuda``/``pycuda.driver`` whose allocations require a
  current context on the calling thread (as the driver API does); ``pycuda.autoinit`` is absent.
"""
import ctypes
import itertools
import threading
import types
from typing import Dict, List, Tuple

import numpy as np

from engines.cuda_buffers import DeviceBuffers


ALIGNMENT = 256  # bytes: cudaMalloc's guarantee, and what set_tensor_address requires


class FakeDeviceMemory:
    def __init__(self):
        self._blocks: Dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def malloc(self, nbytes: int) -> int:
        """A 256-byte aligned block, as cudaMalloc returns (TensorRT requires the alignment)."""
        assert int(nbytes) > 0, f"fake CUDA: malloc of {nbytes} bytes"
        padded = np.zeros(int(nbytes) + ALIGNMENT - 1, dtype=np.uint8)
        offset = -padded.ctypes.data % ALIGNMENT
        block = padded[offset:offset + int(nbytes)]  # a view: keeps ``padded`` alive
        with self._lock:
            self._blocks[block.ctypes.data] = block
        return block.ctypes.data

    def free(self, ptr: int) -> None:
        with self._lock:
            assert ptr in self._blocks, f"fake CUDA: free of unknown device pointer {ptr:#x}"
            del self._blocks[ptr]

    def view(self, ptr: int, nbytes: int) -> np.ndarray:
        """The uint8 view of [ptr, ptr + nbytes); AssertionError if that is not device memory."""
        assert isinstance(ptr, int) and not isinstance(ptr, bool), f"fake CUDA: pointer {ptr!r} is not an int"
        with self._lock:
            for base, block in self._blocks.items():
                if base <= ptr and ptr + nbytes <= base + block.nbytes:
                    return block[ptr - base: ptr - base + nbytes]
        raise AssertionError(f"fake CUDA: [{ptr:#x}, +{nbytes}) is not inside a device allocation")

    def read(self, ptr: int, shape: Tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        return self.view(ptr, count * dtype.itemsize).view(dtype).reshape(shape).copy()

    def write(self, ptr: int, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        self.view(ptr, array.nbytes)[:] = array.reshape(-1).view(np.uint8)

    @property
    def live(self) -> int:
        return len(self._blocks)


MEMORY = FakeDeviceMemory()
_STREAMS = itertools.count(0x5000)


def _host_copy(dst: int, src: int, nbytes: int) -> None:
    ctypes.memmove(dst, src, nbytes)


class FakeDeviceBuffers(DeviceBuffers):
    """`DeviceBuffers` on fake memory; owner-thread only; downloads land at synchronize()."""

    backend = "fake"

    def __init__(self):
        self._owner = threading.get_ident()
        self.stream_handle = next(_STREAMS)
        self._allocations: List[int] = []
        self._queued: List[Tuple[np.ndarray, int]] = []
        self.closed = False

    def _check(self):
        assert threading.get_ident() == self._owner, "fake CUDA: buffers used from a foreign thread"
        assert not self.closed, "fake CUDA: buffers used after close()"

    def allocate(self, nbytes: int) -> int:
        self._check()
        ptr = MEMORY.malloc(nbytes)
        self._allocations.append(ptr)
        return ptr

    def free(self, ptr: int) -> None:
        self._check()
        self._allocations.remove(ptr)
        MEMORY.free(ptr)

    def upload(self, ptr: int, host: np.ndarray) -> None:
        self._check()
        assert host.flags.c_contiguous, "fake CUDA: upload of a non-contiguous array"
        MEMORY.write(ptr, host)

    def download(self, host: np.ndarray, ptr: int) -> None:
        self._check()
        assert host.flags.c_contiguous and host.flags.writeable
        MEMORY.view(ptr, host.nbytes)  # validate now, copy at synchronize()
        self._queued.append((host, ptr))

    def synchronize(self) -> None:
        self._check()
        for host, ptr in self._queued:
            host.reshape(-1).view(np.uint8)[:] = MEMORY.view(ptr, host.nbytes)
        self._queued.clear()

    def close(self) -> None:
        if self.closed:
            return
        self._check()
        for ptr in list(self._allocations):
            self.free(ptr)
        self.closed = True


# ----------------------------------------------------------------------------- polygraphy.cuda

class _FakeCudaWrapper:
    """polygraphy.cuda.Cuda's methods, on fake memory."""

    def __init__(self):
        self.streams = set()

    def malloc(self, nbytes):
        return MEMORY.malloc(nbytes)

    def free(self, ptr):
        MEMORY.free(ptr)

    def memcpy(self, dst, src, nbytes, kind, stream_ptr=None):
        kind = getattr(kind, "value", kind)
        if stream_ptr is not None:
            assert stream_ptr in self.streams, "fake CUDA: memcpy on an unknown stream"
        if kind == 1:  # host -> device
            MEMORY.view(dst, nbytes)
        elif kind == 2:  # device -> host
            MEMORY.view(src, nbytes)
        else:
            raise AssertionError(f"fake CUDA: unexpected memcpy kind {kind}")
        _host_copy(dst, src, nbytes)

    def create_stream(self):
        handle = next(_STREAMS)
        self.streams.add(handle)
        return handle

    def stream_synchronize(self, ptr):
        assert ptr in self.streams, "fake CUDA: synchronize of an unknown stream"

    def destroy_stream(self, ptr):
        self.streams.remove(ptr)


def fake_polygraphy_cuda() -> types.SimpleNamespace:
    """A stand-in for the ``polygraphy.cuda`` module (one wrapper per call)."""
    wrapper = _FakeCudaWrapper()
    kinds = types.SimpleNamespace(HostToHost=ctypes.c_int(0), HostToDevice=ctypes.c_int(1),
                                  DeviceToHost=ctypes.c_int(2), DeviceToDevice=ctypes.c_int(3))
    return types.SimpleNamespace(wrapper=lambda: wrapper, MemcpyKind=kinds)


# ----------------------------------------------------------------------------- pycuda

def install_fake_pycuda(modules: Dict[str, types.ModuleType]) -> types.ModuleType:
    """Put fake ``pycuda`` and ``pycuda.driver`` into ``modules``
    (``sys.modules`` or a monkeypatch-managed copy); returns the driver module."""
    local = threading.local()

    def stack() -> list:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    def need_context():
        assert stack(), ("fake pycuda: no CUDA context is current on thread "
                         f"{threading.current_thread().name} (push the primary context first)")

    class Context:
        def __init__(self, device):
            self.device, self.detached = device, False

        def push(self):
            stack().append(self)

        @staticmethod
        def pop():
            assert stack(), "fake pycuda: pop with no current context"
            stack().pop()

        def detach(self):
            self.detached = True

    class Device:
        def __init__(self, index):
            self.index = index

        def retain_primary_context(self):
            return Context(self)

    class DeviceAllocation:
        def __init__(self, nbytes):
            self.ptr = MEMORY.malloc(nbytes)

        def __int__(self):
            return self.ptr

        def free(self):
            MEMORY.free(self.ptr)

    class Stream:
        def __init__(self):
            need_context()
            self.handle = next(_STREAMS)
            self.queued: List[Tuple[np.ndarray, int]] = []

        def synchronize(self):
            for host, ptr in self.queued:
                host.reshape(-1).view(np.uint8)[:] = MEMORY.view(ptr, host.nbytes)
            self.queued.clear()

    def mem_alloc(nbytes):
        need_context()
        return DeviceAllocation(nbytes)

    def memcpy_htod_async(dst, src, stream=None):
        need_context()
        MEMORY.write(int(dst), np.ascontiguousarray(src))

    def memcpy_dtoh_async(dst, src, stream=None):
        need_context()
        MEMORY.view(int(src), dst.nbytes)
        stream.queued.append((dst, int(src)))

    driver = types.ModuleType("pycuda.driver")
    driver.__dict__.update(init=lambda: None, Device=Device, Context=Context, Stream=Stream,
                           mem_alloc=mem_alloc, memcpy_htod_async=memcpy_htod_async,
                           memcpy_dtoh_async=memcpy_dtoh_async, context_stack=stack)
    package = types.ModuleType("pycuda")
    # A package with no search path: "import pycuda.driver" resolves through sys.modules, and
    # "import pycuda.autoinit" (a non-primary, thread-bound context) fails.
    package.__path__ = []
    package.driver = driver
    modules["pycuda"] = package
    modules["pycuda.driver"] = driver
    return driver
