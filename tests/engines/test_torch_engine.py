"""PyTorchEngine: project .safetensors and official .pth checkpoints, on CPU."""
import cv2
import numpy as np
import pytest
import torch

from compress.models.checkpoints import CheckpointError, load_generator, save_generator
from compress.models import build_generator
from compress.common.palettes import load_palette
from engines.factory import open_engine
from engines.preprocess import make_preprocessor
from engines.torch_engine import PyTorchEngine
from tests.conftest import DATASETS


def test_safetensors_engine_matches_the_model_and_runs_other_sizes(tiny_models, label_batch):
    path = str(tiny_models["student.safetensors"])
    model, meta = load_generator(path)
    with torch.no_grad():
        expected = model(torch.from_numpy(label_batch)).numpy()
    with PyTorchEngine(path) as engine:
        assert engine.metadata["arch"] == "sub_mobile_resnet_9blocks"
        assert engine.metadata["macs"] == meta["macs"] > 0
        assert engine.input_spec.channels == 3 and engine.input_spec.dynamic
        assert engine.input_spec.multiple_of == 4 and engine.resolution == (64, 64)
        output = engine.infer(label_batch)
        np.testing.assert_array_equal(output, expected)
        assert output.dtype == np.float32 and -1 <= output.min() and output.max() <= 1
        assert engine.last_latency_ms > 0
        assert engine.infer(np.zeros((1, 3, 96, 128), np.float32)).shape == (1, 3, 96, 128)
        with pytest.raises(ValueError, match="multiples of 4, got 62x64"):
            engine.infer(np.zeros((1, 3, 62, 64), np.float32))
        with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
            engine.infer(np.zeros((1, 1, 64, 64), np.float32))


def test_official_pth_needs_build_overrides_when_shapes_are_ambiguous(tiny_models, tmp_path):
    model, meta = load_generator(str(tiny_models["teacher.safetensors"]))
    official = tmp_path / "latest_net_G.pth"
    torch.save(model.state_dict(), official)
    with open_engine(official, build={"arch": "resnet_9blocks", "ngf": 8}, resolution=(64, 64),
                     palette="facades", input_kind="label") as engine:
        # MACs are counted at open time for files without metadata, at the given resolution
        assert engine.metadata["macs"] == meta["macs"]
        assert engine.metadata["params"] == meta["params"]
        assert engine.metadata["palette"] == "facades"
        assert engine.infer(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 3, 64, 64)
    with pytest.raises(CheckpointError, match=r"latest_net_G\.pth does not fit"):
        open_engine(official, build={"arch": "resnet_9blocks", "ngf": 16}, profile=False)


def test_released_h2z_checkpoint_runs_at_256(h2z_checkpoint):
    build = {"arch": "sub_mobile_resnet_9blocks", "config": "16_16_32_16_32_32_16_16"}
    with open_engine(h2z_checkpoint, build=build) as engine:
        assert engine.metadata["params"] == 356_867
        assert engine.resolution == (256, 256)
        image = np.random.default_rng(0).uniform(-1, 1, (1, 3, 256, 256)).astype(np.float32)
        output = engine.infer(image)
        assert output.shape == (1, 3, 256, 256) and output.std() > 0.05


def test_thread_count_is_applied_and_restored_on_close(tiny_models):
    assert torch.get_num_threads() == 1  # the conftest's per-test setting
    with open_engine(tiny_models["student.safetensors"], threads=2) as engine:
        assert torch.get_num_threads() == 2 and engine.threads == 2
        torch.set_num_threads(1)  # someone else changes the process-wide setting ...
        engine.infer(np.zeros((1, 3, 8, 8), np.float32))
        assert torch.get_num_threads() == 2  # ... and the engine re-applies its own
    assert torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="threads must be >= 1"):
        open_engine(tiny_models["student.safetensors"], threads=0)


def test_devices_other_than_cpu_fail_clearly(tiny_models):
    path = str(tiny_models["student.safetensors"])
    with pytest.raises(ValueError, match=r"student\.safetensors.*'tensorrt'.*cpu, cuda"):
        open_engine(path, device="tensorrt")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"student\.safetensors.*no CUDA GPU.*device='cpu'"):
            open_engine(path, device="cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            open_engine(path, device="cuda:1")


@pytest.mark.gpu
def test_cuda_engine_matches_cpu(tiny_models, label_batch):
    path = str(tiny_models["student.safetensors"])
    with open_engine(path) as cpu, open_engine(path, device="cuda") as gpu:
        assert gpu.device == "cuda"
        np.testing.assert_allclose(gpu.infer(label_batch), cpu.infer(label_batch), atol=1e-4)


def test_spade_engine_takes_one_hot_facades_labels_with_instance_channel(tmp_path):
    model = build_generator("spade", semantic_nc=14, ngf=4, crop_size=64).eval()  # 13 ids + edge
    path = tmp_path / "spade.safetensors"
    save_generator(model, str(path), resolution=(64, 64), palette="facades", input_kind="label")
    rgb = cv2.cvtColor(cv2.imread(str(DATASETS / "facades/256/val/cmp_b0006.png")),
                       cv2.COLOR_BGR2RGB)
    label_map = load_palette("facades").to_ids(rgb)
    with open_engine(path) as engine:
        assert engine.input_spec.multiple_of == 32  # 2**5 upsamplings ("normal")
        prepare = make_preprocessor(engine.metadata, engine.input_spec)
        assert (prepare.mode, prepare.num_classes, prepare.extra_channels) == ("onehot", 13, 1)
        batch = prepare(label_map)  # 256x256 canvas -> 64x64 one-hot
        assert batch.shape == (1, 14, 64, 64) and batch[0, 13].max() == 0
        image = prepare.to_image(engine.infer(batch), size=(256, 256))
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
