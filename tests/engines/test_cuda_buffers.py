"""The CUDA buffer backends against stand-ins as strict as the real libraries: pycuda's context
release leaves no context pushed on the owning thread (one or two buffers, closed in either
order), and queued copies read and write host arrays only when the stream is synchronised, so a
staging array freed or changed too early is caught. The stand-ins' own semantics are pinned too:
a test of the fixes is worth only as much as the model of pycuda and CUDA under it."""
import gc
import threading

import numpy as np
import pytest

from engines.cuda_buffers import PolygraphyBuffers, PyCudaBuffers
from tests.fakes.fake_cuda import MEMORY, FakeDeviceBuffers, install_fake_polygraphy
from tests.fakes.fake_pycuda import PRIMARY_HANDLE, LogicError, install_for_buffers


def in_thread(work):
    """Run ``work()`` in a fresh thread (its own, empty context stacks); re-raise its error."""
    result = {}

    def target():
        try:
            result["value"] = work()
        except BaseException as error:  # noqa: BLE001 - handed to the calling thread
            result["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


def round_trip(buffers, values) -> np.ndarray:
    """Upload ``values`` (a temporary the caller keeps no reference to), download, synchronize."""
    ptr = buffers.allocate(4 * len(values))
    buffers.upload(ptr, np.array(values, dtype=np.float32))
    gc.collect()
    out = np.zeros(len(values), np.float32)
    buffers.download(out, ptr)
    buffers.synchronize()
    buffers.free(ptr)
    return out


def stacks(driver):
    return driver.context_stack(), len(driver.pycuda_stack()), driver.retains()


# ----------------------------------------------------------------------------- pycuda contexts

def test_the_pycuda_stand_in_detaches_like_pycuda(monkeypatch):
    """cuda.hpp: detach() of a retained primary context calls cuDevicePrimaryCtxRelease, which
    never pops; when the context is not current, detach() pushes it first. So pop-then-detach
    (the old close) leaves it current, and pycuda's own pop then refuses."""
    driver = install_for_buffers(monkeypatch)
    primary = PRIMARY_HANDLE

    def old_order():
        context = driver.Device(0).retain_primary_context()
        context.push()
        assert stacks(driver) == ([primary], 1, 1)
        driver.Context.pop()
        assert stacks(driver) == ([], 0, 1)
        context.detach()
        with pytest.raises(LogicError, match="cannot pop non-current context"):
            driver.Context.pop()
        return stacks(driver)

    def detach_while_current():
        context = driver.Device(0).retain_primary_context()
        context.push()
        context.detach()
        return stacks(driver)

    assert in_thread(old_order) == ([primary], 0, 0)
    assert in_thread(detach_while_current) == ([primary], 0, 0)


POPPING = pytest.mark.parametrize("detach_pops", [False, True], ids=["pycuda", "popping-detach"])


@POPPING
def test_pycuda_close_leaves_nothing_pushed_on_its_thread(monkeypatch, detach_pops):
    driver = install_for_buffers(monkeypatch, detach_pops)

    def work():
        buffers = PyCudaBuffers()
        opened = stacks(driver)
        out = round_trip(buffers, [1.0, 2.0, 3.0])
        buffers.close()
        buffers.close()  # idempotent
        return opened, out, stacks(driver)

    opened, out, after = in_thread(work)
    assert opened == ([PRIMARY_HANDLE], 1, 1)
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    assert after == ([], 0, 0) and driver.leaks == []


@POPPING
@pytest.mark.parametrize("first", [0, 1], ids=["opened-first-closes-first", "opened-last-closes-first"])
def test_two_pycuda_buffers_on_one_thread_close_in_either_order(monkeypatch, first, detach_pops):
    """Two engines in one worker: closing one keeps the other's context current and usable, and
    closing both leaves the stacks as they were (before the fix: an error, or contexts left pushed)."""
    driver = install_for_buffers(monkeypatch, detach_pops)

    def work():
        opened = [PyCudaBuffers(), PyCudaBuffers()]
        opened[first].close()
        survivor = opened[1 - first]
        out = round_trip(survivor, [4.0, 5.0])
        middle = stacks(driver)
        survivor.close()
        return out, middle, stacks(driver)

    out, middle, after = in_thread(work)
    np.testing.assert_array_equal(out, [4.0, 5.0])
    assert middle[0] == [PRIMARY_HANDLE] and middle[2] == 1
    assert after == ([], 0, 0) and driver.leaks == []


def test_pycuda_buffers_work_in_a_thread_after_another_closed_its_own(monkeypatch):
    driver = install_for_buffers(monkeypatch)

    def open_use_close():
        buffers = PyCudaBuffers()
        out = round_trip(buffers, [6.0])
        buffers.close()
        return out

    for _ in range(2):  # a fresh worker per engine, as the app opens panes
        np.testing.assert_array_equal(in_thread(open_use_close), [6.0])
    assert driver.context_stack() == [] and driver.retains() == 0 and driver.leaks == []


# ----------------------------------------------------------------------------- queued copies

def open_backend(name, monkeypatch):
    if name == "pycuda":
        install_for_buffers(monkeypatch)
        return PyCudaBuffers()
    if name == "polygraphy":
        install_fake_polygraphy(monkeypatch)
        return PolygraphyBuffers()
    return FakeDeviceBuffers()


@pytest.mark.parametrize("backend", ["pycuda", "polygraphy", "fake"])
def test_copies_read_and_write_host_arrays_when_the_stream_runs_them(monkeypatch, backend):
    """A host array changed after upload() but before synchronize() reaches the device changed,
    and a download lands only at synchronize(), as real asynchronous copies may behave."""
    buffers = open_backend(backend, monkeypatch)
    live = MEMORY.live
    ptr = buffers.allocate(16)
    staging = np.arange(4, dtype=np.float32)
    out = np.zeros(4, np.float32)
    buffers.upload(ptr, staging)
    staging[:] = 7.0  # too early: the copy has not run yet
    buffers.download(out, ptr)
    assert not out.any()
    buffers.synchronize()
    np.testing.assert_array_equal(out, [7.0] * 4)
    buffers.free(ptr)
    buffers.close()
    assert MEMORY.live == live


@pytest.mark.parametrize("backend", ["pycuda", "fake"])
def test_backends_keep_staging_arrays_alive_until_synchronize(monkeypatch, backend):
    """pycuda's async copies keep no reference to the host array (nor does the stand-in): a
    backend that let go of a temporary before synchronize() would fail here."""
    buffers = open_backend(backend, monkeypatch)
    np.testing.assert_array_equal(round_trip(buffers, [1.5, -2.0]), [1.5, -2.0])
    buffers.close()


def test_the_stand_ins_catch_a_staging_array_freed_too_early(monkeypatch):
    driver = install_for_buffers(monkeypatch)
    buffers = PyCudaBuffers()
    ptr = buffers.allocate(8)
    stream = driver.Stream()
    driver.memcpy_htod_async(ptr, np.ones(2, np.float32), stream)  # nothing keeps the array
    gc.collect()
    with pytest.raises(AssertionError, match="freed before the stream ran the copy"):
        stream.synchronize()
    del stream  # destroyed while its context is alive
    buffers.close()
    assert driver.leaks == []


def test_the_stand_in_refuses_to_free_memory_queued_work_still_uses():
    buffers = FakeDeviceBuffers()
    ptr = buffers.allocate(8)
    buffers.upload(ptr, np.ones(2, np.float32))
    with pytest.raises(AssertionError, match="synchronize the stream first"):
        buffers.free(ptr)
    with pytest.raises(AssertionError, match="close\\(\\) with queued work"):
        buffers.close()
    buffers.synchronize()
    buffers.close()
