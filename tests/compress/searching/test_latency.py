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


def test_lut_objects_sharing_a_file_see_and_keep_each_others_entries(tmp_path, subnet):
    """A ladder's searches and the ladder itself each open the shared LUT: an entry one of them
    measured is found by the others (no second measurement) and no save drops it."""
    path = str(tmp_path / "lut.json")
    measure = FakeMeasure()
    first, second = LatencyLUT(path), LatencyLUT(path)  # both opened before anything was measured
    assert cached_latency(first, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet)[1] is True
    assert cached_latency(second, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet)[1] is False
    assert cached_latency(second, measure, "4_4_4_4_4_4_4_4", (32, 32), lambda: subnet)[1] is True
    first.put("other", 1.0)  # first's memory lacks second's entry: saving must not drop it
    assert measure.calls == 2 and len(LatencyLUT(path)) == 3


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


# ----------------------------------------------------------------------------- the timed graph

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]
SHIPPED_ONNX = REPO / "assets" / "models" / "facades" / "compressed.onnx"


def _record_sessions(monkeypatch):
    """Make onnxruntime.InferenceSession record what it is opened on (model bytes, options)."""
    import onnxruntime
    opened = []
    real = onnxruntime.InferenceSession

    def recording(model, options=None, *args, **kwargs):
        opened.append((model, options))
        return real(model, options, *args, **kwargs)
    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    return opened


def test_the_search_times_exactly_the_graph_that_export_ships(tmp_path, monkeypatch):
    """The bytes the measurer hands to ONNX Runtime are, node for node and weight for weight,
    the graph `export.onnx.export_onnx` writes for the same sub-network, size and the options
    the shipped files were exported with (read from their metadata)."""
    import onnx
    from compress.models import extract_subnet
    from compress.models.onnx_graph import SHIPPED_GRAPH
    from engines.onnx_engine import OnnxRuntimeEngine, read_onnx_metadata
    from export.onnx import export_onnx

    shipped = read_onnx_metadata(str(SHIPPED_ONNX), required=True)["onnx"]
    # the search's default recipe is what the assets were written with
    assert {k: shipped[k] for k in ("reflect_pad", "output_conv")} == \
        {k: SHIPPED_GRAPH[k] for k in ("reflect_pad", "output_conv")}
    assert not shipped["dynamic"]  # the measurer times fixed-size graphs, like the shipped files
    torch.manual_seed(0)
    supernet = build_generator("super_mobile_resnet_9blocks", ngf=16, n_blocks=3)
    subnet = extract_subnet(supernet, "8_16_8_16_8_16_8_8").eval()
    opened = _record_sessions(monkeypatch)
    assert LatencyMeasurer("onnxruntime", threads=1, warmup=0, runs=1)(subnet, (32, 32)) > 0
    monkeypatch.undo()
    # the last session is the timed one (onnxslim may open its own while building the graph)
    timed_bytes, options = opened[-1]
    timed = onnx.load_from_string(timed_bytes)

    path = tmp_path / "shipped.onnx"
    export_onnx(subnet, str(path), size=(32, 32), reflect_pad=shipped["reflect_pad"],
                output_conv=shipped["output_conv"])
    written = onnx.load(str(path))
    assert [n.op_type for n in timed.graph.node] == [n.op_type for n in written.graph.node]
    assert "DepthToSpace" in {n.op_type for n in timed.graph.node}  # s2d output conv applied
    assert onnx.printer.to_text(timed.graph) == onnx.printer.to_text(written.graph)
    assert timed.graph.SerializeToString() == written.graph.SerializeToString()  # weights too
    assert (timed.ir_version, list(timed.opset_import)) == (written.ir_version, list(written.opset_import))
    assert len(written.metadata_props) > 0 and len(timed.metadata_props) == 0  # the only difference

    # ... in a session set up like the app's ONNX Runtime engine
    with OnnxRuntimeEngine(str(path), threads=1) as engine:
        expected = engine.session_options
        for name in ("graph_optimization_level", "execution_mode", "intra_op_num_threads",
                     "inter_op_num_threads"):
            assert getattr(options, name) == getattr(expected, name), name


def test_lut_entries_timed_on_the_old_graph_are_not_reused(tmp_path, subnet, monkeypatch):
    """Keys of ONNX Runtime timings carry the graph recipe: entries written under the old key
    (a plain export without onnxslim or the s2d output conv) are measured again."""
    from compress.models import onnx_graph
    from compress.searching.latency import LUT_FORMAT
    measure = LatencyMeasurer("onnxruntime", threads=1, warmup=0, runs=1)
    host = measure.describe()["host"]
    old_key = f"net:8_8_8_8_8_8_8_8@32x32|onnxruntime|cpu|t1|{host}"  # the key format before
    path = tmp_path / "lut.json"
    path.write_text(json.dumps({"format": LUT_FORMAT, "entries": {old_key: {"latency_ms": 0.001}}}))
    timed = []
    monkeypatch.setattr(LatencyMeasurer, "_time_onnxruntime", lambda self, m, e: timed.append(1) or [7.0])
    lut = LatencyLUT(str(path))
    assert cached_latency(lut, measure, "8_8_8_8_8_8_8_8", (32, 32), lambda: subnet, "net") == (7.0, True)
    assert timed == [1]
    new_key = LatencyLUT.key("8_8_8_8_8_8_8_8", (32, 32), measure.describe(), "net")
    assert new_key == old_key + "|onnx1(exporter=auto,output_conv=s2d,reflect_pad=keep)"
    assert set(json.loads(path.read_text())["entries"]) == {old_key, new_key}
    assert json.loads(path.read_text())["entries"][new_key]["graph"] == measure.describe()["graph"]
    # other graph options, or a new recipe version, are other entries
    keep = LatencyMeasurer("onnxruntime", threads=1, graph_options={"output_conv": "keep"})
    assert LatencyLUT.key("c", (32, 32), keep.describe()) != LatencyLUT.key("c", (32, 32), measure.describe())
    recipe = measure.describe()["graph"]
    monkeypatch.setattr(onnx_graph, "GRAPH_RECIPE_VERSION", 2)
    assert measure.describe()["graph"] != recipe
    # eager PyTorch times no ONNX graph: its entries keep their keys
    eager = LatencyMeasurer("torch", threads=1).describe()
    assert "graph" not in eager and LatencyLUT.key("c", (32, 32), eager) == f"c@32x32|torch|cpu|t1|{host}"


def test_bad_graph_options_are_clear_errors():
    with pytest.raises(ValueError, match="output_conv must be one of keep, s2d"):
        LatencyMeasurer(graph_options={"output_conv": "fast"})
    with pytest.raises(ValueError, match="unknown latency graph options"):
        LatencyMeasurer(graph_options={"dynamic": True})


@pytest.mark.parametrize("role", ["compressed", "original"])
def test_the_default_recipe_reproduces_the_shipped_files(role):
    """`LatencyMeasurer().graph` of the shipped checkpoints is the graph of the shipped .onnx
    files: the search's defaults are the recipe the assets were made with."""
    import onnx
    from compress.models.checkpoints import load_generator
    from engines.onnx_engine import read_onnx_metadata
    path = SHIPPED_ONNX.parent / f"{role}.onnx"
    meta = read_onnx_metadata(str(path), required=True)
    if meta["onnx"]["torch"] != torch.__version__:
        pytest.skip(f"{path.name} was exported by torch {meta['onnx']['torch']}; the exporter's "
                    f"bytes may differ under {torch.__version__}")
    model, _ = load_generator(str(path.with_suffix(".safetensors")))
    timed = LatencyMeasurer().graph(model, meta["resolution"])
    shipped = onnx.load(str(path))
    assert timed.graph.SerializeToString() == shipped.graph.SerializeToString(), (
        f"the search no longer times {path.name}'s graph: re-export the assets with python -m "
        "export.onnx --output-conv s2d, or align compress.models.onnx_graph.SHIPPED_GRAPH")
