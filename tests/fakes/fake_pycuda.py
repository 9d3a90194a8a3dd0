"""A stand-in for ``pycuda.driver`` that keeps pycuda's context bookkeeping as the real one does.

Modelled on pycuda's src/cpp/cuda.hpp (``context``, ``primary_context``, ``context_push``) and
the CUDA driver API reference, per thread:

- two stacks: the **driver's** (cuCtxPushCurrent/PopCurrent) and **pycuda's own** stack of
  Context objects. pycuda keeps the driver stack one deep: ``push()`` first pops the driver's
  top when its own stack is not empty; ``Context.pop()`` does the same, pops its own stack and
  pushes the next valid context of it back onto the driver, and raises when its own stack is empty.
- ``Device.retain_primary_context()`` retains (a count per device) and pushes nothing.
- ``Context.detach()`` releases with cuDevicePrimaryCtxRelease, which never pops. If the context
  is pycuda's current one, pycuda drops it from its own stack (and pushes its next valid context
  onto the driver) while the driver keeps it; if not, in the thread that made it, it is pushed
  first (made current to be released) and stays pushed; in another thread nothing is released.
- ``mem_alloc`` and ``Stream()`` need a current context whose retain is not released and
  remember it; freeing or destroying them once it is detached (or from another thread) only
  leaks them with a warning, as pycuda does: ``driver.leaks`` lists them, and streams destroyed
  with work still queued.
- async copies run at ``Stream.synchronize()`` and keep no reference to the host array
  (`tests.fakes.fake_cuda`), like the real ones.
- ``detach_pops=True`` models a pycuda whose detach also pops the driver stack, as cuCtxDestroy
  (a non-primary detach) does: the project's release must hold with either.
- ``driver.libcuda``: the driver calls `engines.cuda_buffers` makes through ctypes
  (cuCtxGetCurrent, cuCtxPopCurrent_v2, cuCtxPushCurrent_v2), on the same driver stack.

``driver.context_stack()`` (the driver's, as handles), ``driver.pycuda_stack()`` and
``driver.retains(index)`` show what a test leaves behind.
"""
import ctypes
import sys
import threading
import types
from typing import Dict, List

from tests.fakes.fake_cuda import MEMORY, FakeStream, queue_download, queue_upload

PRIMARY_HANDLE = 0xC0DE00  # + the device index: the CUcontext of that device's primary context
CUDA_ERROR_INVALID_CONTEXT = 201


class Error(Exception):
    """pycuda._driver.Error."""


class LogicError(Error):
    """pycuda._driver.LogicError (what CUDA_ERROR_INVALID_CONTEXT becomes)."""


class _State:
    """One fake's per-thread stacks, retain counts and leaks."""

    def __init__(self, detach_pops: bool):
        self.detach_pops = detach_pops
        self.local = threading.local()
        self.retain_counts: Dict[int, int] = {}
        self.leaks: List[str] = []
        self.lock = threading.Lock()
        self.Context = None  # the bound Context class, set by install()

    def driver(self) -> List[int]:
        if not hasattr(self.local, "driver"):
            self.local.driver, self.local.pycuda = [], []
        return self.local.driver

    def pycuda(self) -> list:
        self.driver()
        return self.local.pycuda

    def driver_pop(self) -> int:
        if not self.driver():
            raise LogicError("cuCtxPopCurrent failed: invalid context")
        return self.driver().pop()

    def current(self, except_=None):
        """pycuda's current_context(): the top valid context of its stack, dropping dead ones."""
        own = self.pycuda()
        while own:
            if own[-1] is not except_ and own[-1].valid:
                return own[-1]
            own.pop()
        return None

    def retain(self, index: int) -> None:
        with self.lock:
            self.retain_counts[index] = self.retain_counts.get(index, 0) + 1

    def release(self, index: int) -> None:
        """cuDevicePrimaryCtxRelease (which pops nothing), then the pop of a popping pycuda."""
        with self.lock:
            assert self.retain_counts.get(index, 0) > 0, \
                "fake pycuda: primary context released more often than retained"
            self.retain_counts[index] -= 1
        if self.detach_pops:
            self.driver_pop()

    def need_context(self, what: str):
        top = self.current()
        if top is None:
            raise LogicError(f"{what} failed: no currently active context? (thread "
                             f"{threading.current_thread().name}: push the primary context first)")
        driver = self.driver()
        assert driver and driver[-1] == top.handle, (
            f"fake pycuda: {what}: the driver's current context is not pycuda's ({top.handle:#x}); "
            f"driver stack {[hex(h) for h in driver]}")
        assert self.retain_counts.get(top.device.index, 0) > 0, \
            f"fake pycuda: {what} in a released primary context"
        return top


class _Context:
    _state: _State

    def __init__(self, device):
        self.device, self.valid, self.thread = device, True, threading.get_ident()
        self.handle = PRIMARY_HANDLE + device.index

    def push(self):
        state = self._state
        if not self.valid:
            raise LogicError("context_push failed: cannot push a detached context")
        if state.pycuda():
            state.driver_pop()  # prepare_context_switch
        state.driver().append(self.handle)
        state.pycuda().append(self)

    @classmethod
    def pop(cls):
        state = cls._state
        if state.pycuda():
            state.driver_pop()  # prepare_context_switch
        if not state.pycuda():
            raise LogicError("context::pop failed: invalid context - cannot pop non-current context")
        state.current()  # drops detached contexts off the top, as pycuda does here
        if not state.pycuda():
            raise LogicError("m_stack::pop failed: cannot pop context from empty stack")
        state.pycuda().pop()
        top = state.current()
        if top is not None:
            state.driver().append(top.handle)

    @classmethod
    def get_current(cls):
        return cls._state.current()

    def detach(self):
        state = self._state
        if not self.valid:
            raise LogicError("context::detach failed: cannot detach from invalid context")
        active = state.current() is self
        if active:
            state.release(self.device.index)  # cuDevicePrimaryCtxRelease: the driver keeps it
        elif self.thread == threading.get_ident():
            state.driver().append(self.handle)  # pushed to be released, and left pushed
            state.release(self.device.index)
        # else: another thread's context: pycuda releases nothing (the retain leaks)
        self.valid = False
        if active:
            top = state.current(except_=self)
            if top is not None:
                state.driver().append(top.handle)


class _Device:
    _state: _State

    def __init__(self, index):
        self.index = index

    def retain_primary_context(self):
        self._state.retain(self.index)
        return self._state.Context(self)


def _dead_or_foreign(context) -> bool:
    """pycuda's clean-ups run in the object's context; they fail (warn, leak) when it is dead
    or belongs to another thread."""
    return not context.valid or context.thread != threading.get_ident()


class _DeviceAllocation:
    _state: _State

    def __init__(self, nbytes):
        self.context = self._state.need_context("mem_alloc")
        self.ptr = MEMORY.malloc(nbytes)

    def __int__(self):
        return self.ptr

    def free(self):
        if self.ptr is None:
            raise LogicError("device_allocation::free failed: invalid value - already freed")
        if _dead_or_foreign(self.context):
            self._state.leaks.append(f"device allocation {self.ptr:#x}")
        else:
            MEMORY.free(self.ptr)
        self.ptr = None


class _Stream(FakeStream):
    _state: _State

    def __init__(self, flags=0):
        self.context = self._state.need_context("Stream()")
        super().__init__()

    def __del__(self):
        if _dead_or_foreign(self.context):
            self._state.leaks.append(f"stream {self.handle:#x}")
        elif self.pending:  # cuStreamDestroy returns at once; the work ends at an unknown time
            self._state.leaks.append(f"stream {self.handle:#x} destroyed with queued work")


def _target(pointer) -> ctypes.c_void_p:
    target = getattr(pointer, "_obj", None)
    assert isinstance(target, ctypes.c_void_p), "fake libcuda: pass ctypes.byref(ctypes.c_void_p())"
    return target


class _FakeLibcuda:
    """The driver-API context calls, as ctypes makes them, on the fake driver stack."""

    def __init__(self, state: _State):
        self._state = state

    def cuCtxGetCurrent(self, pointer):
        driver = self._state.driver()
        _target(pointer).value = driver[-1] if driver else None
        return 0

    def cuCtxPopCurrent_v2(self, pointer):
        driver = self._state.driver()
        if not driver:
            return CUDA_ERROR_INVALID_CONTEXT
        _target(pointer).value = driver.pop()
        return 0

    def cuCtxPushCurrent_v2(self, context):
        assert isinstance(context, ctypes.c_void_p) and context.value, \
            "fake libcuda: pass the CUcontext as a non-NULL ctypes.c_void_p (an int would go as a C int)"
        self._state.driver().append(context.value)
        return 0


def _copies(state: _State):
    def memcpy_htod_async(dest, src, stream=None):
        state.need_context("memcpy_htod_async")
        assert stream is not None, "fake pycuda: pass the stream (the project queues every copy on its own)"
        queue_upload(stream, int(dest), src, "memcpy_htod_async")

    def memcpy_dtoh_async(dest, src, stream=None):
        state.need_context("memcpy_dtoh_async")
        assert stream is not None, "fake pycuda: pass the stream (the project queues every copy on its own)"
        queue_download(stream, dest, int(src), "memcpy_dtoh_async")

    return memcpy_htod_async, memcpy_dtoh_async


def install(modules: Dict[str, types.ModuleType], detach_pops: bool = False) -> types.ModuleType:
    """Put fake ``pycuda`` and ``pycuda.driver`` into ``modules``
    (``sys.modules`` or a monkeypatch-managed copy); returns the driver module."""
    state = _State(detach_pops)

    def bind(cls, name):
        return type(name, (cls,), {"_state": state})

    state.Context = bind(_Context, "Context")
    allocation = bind(_DeviceAllocation, "DeviceAllocation")
    htod, dtoh = _copies(state)
    driver = types.ModuleType("pycuda.driver")
    driver.__dict__.update(
        init=lambda: None, Device=bind(_Device, "Device"), Context=state.Context,
        Stream=bind(_Stream, "Stream"), DeviceAllocation=allocation, mem_alloc=allocation,
        memcpy_htod_async=htod, memcpy_dtoh_async=dtoh, Error=Error, LogicError=LogicError,
        libcuda=_FakeLibcuda(state), leaks=state.leaks,
        context_stack=lambda: list(state.driver()), pycuda_stack=lambda: list(state.pycuda()),
        retains=lambda index=0: state.retain_counts.get(index, 0))
    package = types.ModuleType("pycuda")
    # A package with no search path: "import pycuda.driver" resolves through sys.modules, and
    # "import pycuda.autoinit" (a non-primary, thread-bound context) fails.
    package.__path__ = []
    package.driver = driver
    modules["pycuda"] = package
    modules["pycuda.driver"] = driver
    return driver


def install_for_buffers(monkeypatch, detach_pops: bool = False) -> types.ModuleType:
    """`install` into ``sys.modules`` for the rest of a test, with `engines.cuda_buffers`
    loading this fake's libcuda; returns the driver module."""
    from engines import cuda_buffers
    modules: Dict[str, types.ModuleType] = {}
    driver = install(modules, detach_pops)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(cuda_buffers, "load_libcuda", lambda: driver.libcuda)
    return driver
