"""compress.searching.latency: measured latency on ONNX Runtime / PyTorch and the latency lookup table."""
import json

import pytest
import torch

from compress.searching.latency import LatencyLUT, LatencyMeasurer, cached_latency, time_runs
from compress.models import build_generator


@pytest.fixture(scope="module")
def subnet():
    torch.manual_seed(0)
    return build_generator("sub_mobile_resnet_9blocks", config="8_8_8_8_8_8_8_8", n_blocks=3).eval()


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_measurer_returns_a_positive_median(subnet, backend):
    measure = LatencyMeasurer(backend, threads=1, warmup=1, runs=3)
    assert measure(subnet, (32, 32)) > 0
    setting = measure.describe()
    assert (setting["backend"], setting["device"], setting["threads"]) == (backend, "cpu", 1)


def test_spade_subnets_are_timed_on_one_hot_inputs():
    spade = build_generator("sub_mobile_spade", semantic_nc=5, ngf=4, config="4_4_4_4_4_4_4_4", crop_size=64)
    assert LatencyMeasurer("onnxruntime", warmup=0, runs=1)(spade.eval(), (64, 64)) > 0


def test_time_runs_counts_warmup_and_timed_calls():
    calls = []
    samples = time_runs(lambda: calls.append(1), warmup=2, runs=5)
    assert len(calls) == 7 and len(samples) == 5 and all(s >= 0 for s in samples)
    with pytest.raises(ValueError, match="runs must be >= 1"):
        time_runs(lambda: None, warmup=0, runs=0)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="TensorRT timing"):
        LatencyMeasurer("tensorrt")
    with pytest.raises(ValueError, match="cpu, cuda"):
        LatencyMeasurer("onnxruntime", device="gpu")
    with pytest.raises(ValueError, match="threads"):
        LatencyMeasurer(threads=0)


class FakeMeasure:
    """Returns fixed latencies and counts the models it was asked to time."""

    def __init__(self, latency_ms=2.5):
        self.latency_ms, self.calls = latency_ms, 0

    def describe(self):
        return {"backend": "fake", "device": "cpu", "threads": 2, "host": "h"}

    def __call__(self, model, size_hw):
        self.calls += 1
        return self.latency_ms


def test_lut_remembers_measurements_across_instances(tmp_path, subnet):
    path = tmp_path / "lut.json"
    measure = FakeMeasure()
    lut = LatencyLUT(str(path))
    assert cached_latency(lut, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet) == (2.5, True)
    assert cached_latency(lut, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet) == (2.5, False)
    reopened = LatencyLUT(str(path))
    assert cached_latency(reopened, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet) == (2.5, False)
    assert measure.calls == 1
    # another size, thread count or backend is another entry
    assert cached_latency(reopened, measure, "8_8_8_8_8_8_8_8", (64, 64), lambda: subnet)[1] is True
    key = LatencyLUT.key("8_8_8_8_8_8_8_8", (32, 32), measure.describe())
    assert key == "8_8_8_8_8_8_8_8@32x32|fake|cpu|t2|h"
    # the same config string of another network is another entry
    assert cached_latency(reopened, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet, "spade")[1] is True
    assert "spade:8_8_8_8_8_8_8_8@32x32|fake|cpu|t2|h" in reopened.entries
    entry = json.loads(path.read_text())["entries"][key]
    assert entry["latency_ms"] == 2.5 and entry["size"] == [32, 32] and entry["threads"] == 2
    with pytest.raises(ValueError, match="returned 0"):
        cached_latency(reopened, FakeMeasure(0.0), "4_4_4_4_4_4_4_4", (32, 32), lambda: subnet)


def test_a_foreign_file_is_not_taken_for_a_lut(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"entries": {}}')
    with pytest.raises(ValueError, match="not a latency LUT"):
        LatencyLUT(str(path))


def test_network_tag_names_the_sub_network_architecture():
    from compress.searching.latency import network_tag
    resnet = build_generator("super_mobile_resnet_9blocks", ngf=8, n_blocks=3)
    assert network_tag(resnet) == "sub_mobile_resnet_9blocks(input_nc=3,n_blocks=3,ngf=8,output_nc=3)"
    spade = build_generator("super_mobile_spade", semantic_nc=5, ngf=4, crop_size=64)
    assert network_tag(spade).startswith("sub_mobile_spade(") and "semantic_nc=5" in network_tag(spade)
