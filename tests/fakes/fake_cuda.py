"""Fake GPU memory and streams for CPU-only tests: device pointers backed by numpy, strict about misuse.

A "device pointer" is the real address of a numpy buffer registered in `MEMORY`, so host<->device
copies are plain memmoves, but every device-side access is checked against the registered
blocks: a host pointer passed where a device pointer belongs, an overrun, a double free or a
leak fails the test instead of corrupting memory.

Work queued on a stream (async copies, the fake TensorRT's ``execute_async_v3``) runs only when
that stream is synchronised, in order, as a real GPU may run it that late: an async copy reads
its host array at synchronize time, so a staging array changed before then changes what reaches
the device. Where the copy is given the array (pycuda, `FakeDeviceBuffers`) it keeps only a weak
reference, as pycuda keeps none, and one freed before then fails the test; polygraphy's copies
get raw addresses, so there only the change is visible.
Freeing device memory that queued work still uses fails too (torch's caching allocator would hand
it to other work). Streams are found by handle (`stream`); handle 0 is the default stream.

Three fronts share `MEMORY`:

- `FakeDeviceBuffers`: the `engines.cuda_buffers.DeviceBuffers` protocol (it keeps queued host
  arrays alive, as the real backends do), and every call must come from the creating thread.
- `fake_polygraphy_cuda()`: a stand-in for the ``polygraphy.cuda`` module (``wrapper()`` with
  malloc/free/memcpy/streams, ``MemcpyKind``) used by export's calibrator and --compare.
- `install_fake_pycuda(modules)`: ``pycuda``/``pycuda.driver`` with pycuda's two per-thread
  context stacks (see `tests.fakes.fake_pycuda`); ``pycuda.autoinit`` is absent.
"""
import ctypes
import itertools
import sys
import threading
import types
import weakref
from typing import Callable, Dict, List, Tuple

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
        busy = [f"{handle:#x}" for handle, queue in list(_STREAMS.items()) if queue.uses(ptr)]
        assert not busy, (f"fake CUDA: free of device memory {ptr:#x} that work queued on stream "
                          f"{', '.join(busy)} still uses; synchronize the stream first")
        with self._lock:
            del self._blocks[ptr]

    def block_of(self, ptr: int, nbytes: int = 1) -> int:
        """The base pointer of the allocation holding [ptr, ptr + nbytes)."""
        assert isinstance(ptr, int) and not isinstance(ptr, bool), f"fake CUDA: pointer {ptr!r} is not an int"
        with self._lock:
            for base, block in self._blocks.items():
                if base <= ptr and ptr + nbytes <= base + block.nbytes:
                    return base
        raise AssertionError(f"fake CUDA: [{ptr:#x}, +{nbytes}) is not inside a device allocation")

    def view(self, ptr: int, nbytes: int) -> np.ndarray:
        """The uint8 view of [ptr, ptr + nbytes); AssertionError if that is not device memory."""
        base = self.block_of(ptr, nbytes)
        return self._blocks[base][ptr - base: ptr - base + nbytes]

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
_HANDLES = itertools.count(0x5000)
_STREAMS: "weakref.WeakValueDictionary[int, FakeStream]" = weakref.WeakValueDictionary()


class FakeStream:
    """A CUDA stream: work queued on it runs in order, and only at ``synchronize()``."""

    def __init__(self, handle=None):
        self.handle = next(_HANDLES) if handle is None else handle
        self._work: List[Tuple[Callable[[], None], Tuple[int, ...], object]] = []
        _STREAMS[self.handle] = self

    def enqueue(self, run: Callable[[], None], *device_ptrs: int, keep: object = None) -> None:
        """Queue ``run``; ``device_ptrs`` (validated now) may not be freed before it has run,
        and ``keep`` stays referenced until then."""
        self._work.append((run, tuple(MEMORY.block_of(p) for p in device_ptrs), keep))

    @property
    def pending(self) -> int:
        return len(self._work)

    def uses(self, base: int) -> bool:
        return any(base in blocks for _, blocks, _ in self._work)

    def synchronize(self) -> None:
        work, self._work = self._work, []
        for run, _, _ in work:
            run()


DEFAULT_STREAM = FakeStream(0)


def stream(handle: int) -> FakeStream:
    """The live fake stream with this handle (what ``execute_async_v3`` is given)."""
    assert isinstance(handle, int) and handle in _STREAMS, (
        f"fake CUDA: {handle!r} is not a live stream handle (created by a fake CUDA backend and "
        "not yet destroyed)")
    return _STREAMS[handle]


def _host_copy(dst: int, src: int, nbytes: int) -> None:
    ctypes.memmove(dst, src, nbytes)


def _still_alive(host: np.ndarray, api: str) -> Callable[[], None]:
    """A check, for when a queued copy runs, that ``host``'s memory was not freed meanwhile: the
    copy holds only its address, like the real driver (a weak reference to the owning array)."""
    owner = host
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    ref = weakref.ref(owner)

    def check():
        assert ref() is not None, (f"fake CUDA: the host array of a queued {api} was freed before "
                                   "the stream ran the copy; keep it alive until synchronize()")
    return check


def queue_upload(queue: FakeStream, ptr: int, host: np.ndarray, api: str, hold: bool = False) -> None:
    """An async host->device copy that reads ``host`` when ``queue`` is synchronised.
    ``hold``: keep ``host`` alive meanwhile (what a `DeviceBuffers` backend does)."""
    assert isinstance(host, np.ndarray) and host.flags.c_contiguous, \
        f"fake CUDA: {api} of a non-contiguous array"
    src, nbytes, alive = host.ctypes.data, host.nbytes, _still_alive(host, api)

    def run():
        alive()
        _host_copy(MEMORY.view(ptr, nbytes).ctypes.data, src, nbytes)

    MEMORY.view(ptr, nbytes)  # the device side is validated when the copy is issued
    queue.enqueue(run, ptr, keep=host if hold else None)


def queue_download(queue: FakeStream, host: np.ndarray, ptr: int, api: str, hold: bool = False) -> None:
    """An async device->host copy that writes ``host`` when ``queue`` is synchronised."""
    assert isinstance(host, np.ndarray) and host.flags.c_contiguous and host.flags.writeable, \
        f"fake CUDA: {api} into a non-contiguous or read-only array"
    dst, nbytes, alive = host.ctypes.data, host.nbytes, _still_alive(host, api)

    def run():
        alive()
        _host_copy(dst, MEMORY.view(ptr, nbytes).ctypes.data, nbytes)

    MEMORY.view(ptr, nbytes)
    queue.enqueue(run, ptr, keep=host if hold else None)


class FakeDeviceBuffers(DeviceBuffers):
    """`DeviceBuffers` on fake memory; owner-thread only; copies run at synchronize()."""

    backend = "fake"

    def __init__(self):
        self._owner = threading.get_ident()
        self.stream = FakeStream()
        self.stream_handle = self.stream.handle
        self._allocations: List[int] = []
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
        MEMORY.free(ptr)  # first: it refuses memory that queued work still uses
        self._allocations.remove(ptr)

    def upload(self, ptr: int, host: np.ndarray) -> None:
        self._check()
        queue_upload(self.stream, ptr, host, "upload", hold=True)

    def download(self, host: np.ndarray, ptr: int) -> None:
        self._check()
        queue_download(self.stream, host, ptr, "download", hold=True)

    def synchronize(self) -> None:
        self._check()
        self.stream.synchronize()

    def close(self) -> None:
        if self.closed:
            return
        self._check()
        assert not self.stream.pending, "fake CUDA: close() with queued work; synchronize first"
        for ptr in list(self._allocations):
            self.free(ptr)
        self.closed = True


# ----------------------------------------------------------------------------- polygraphy.cuda

class _FakeCudaWrapper:
    """polygraphy.cuda.Cuda's methods, on fake memory. memcpy with a stream is cudaMemcpyAsync:
    it runs at stream_synchronize and, given raw addresses, holds no reference to host memory."""

    def __init__(self):
        self.streams: Dict[int, FakeStream] = {}

    def malloc(self, nbytes):
        return MEMORY.malloc(nbytes)

    def free(self, ptr):
        MEMORY.free(ptr)

    def memcpy(self, dst, src, nbytes, kind, stream_ptr=None):
        kind = getattr(kind, "value", kind)
        if kind not in (1, 2):  # host -> device, device -> host
            raise AssertionError(f"fake CUDA: unexpected memcpy kind {kind}")
        device = dst if kind == 1 else src
        MEMORY.view(device, nbytes)
        if stream_ptr is None:  # cudaMemcpy: done when it returns
            _host_copy(dst, src, nbytes)
            return
        assert stream_ptr in self.streams, "fake CUDA: memcpy on an unknown stream"

        def run():  # reads (or writes) the host memory only now
            MEMORY.view(device, nbytes)
            _host_copy(dst, src, nbytes)

        self.streams[stream_ptr].enqueue(run, device)

    def create_stream(self):
        queue = FakeStream()
        self.streams[queue.handle] = queue
        return queue.handle

    def stream_synchronize(self, ptr):
        assert ptr in self.streams, "fake CUDA: synchronize of an unknown stream"
        self.streams[ptr].synchronize()

    def destroy_stream(self, ptr):
        assert not self.streams[ptr].pending, ("fake CUDA: destroying a stream with queued work "
                                               "(it would finish at an unknown time); synchronize first")
        del self.streams[ptr]


def fake_polygraphy_cuda() -> types.SimpleNamespace:
    """A stand-in for the ``polygraphy.cuda`` module (one wrapper per call)."""
    wrapper = _FakeCudaWrapper()
    kinds = types.SimpleNamespace(HostToHost=ctypes.c_int(0), HostToDevice=ctypes.c_int(1),
                                  DeviceToHost=ctypes.c_int(2), DeviceToDevice=ctypes.c_int(3))
    return types.SimpleNamespace(wrapper=lambda: wrapper, MemcpyKind=kinds)


def install_fake_polygraphy(monkeypatch) -> types.SimpleNamespace:
    """`fake_polygraphy_cuda` as ``polygraphy.cuda`` in ``sys.modules`` for the rest of a test."""
    module = fake_polygraphy_cuda()
    package = types.ModuleType("polygraphy")
    package.__path__ = []
    package.cuda = module
    monkeypatch.setitem(sys.modules, "polygraphy", package)
    monkeypatch.setitem(sys.modules, "polygraphy.cuda", module)
    return module


def install_fake_pycuda(modules: Dict[str, types.ModuleType]) -> types.ModuleType:
    """Fake ``pycuda`` and ``pycuda.driver`` in ``modules`` (see `tests.fakes.fake_pycuda`)."""
    from tests.fakes.fake_pycuda import install
    return install(modules)
