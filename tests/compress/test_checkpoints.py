"""Checkpoints: the released horse->zebra generator loads strictly; the project format round-trips."""
import hashlib

import pytest
import torch

from compress.checkpoints import main
from compress.models.checkpoints import (CheckpointError, guess_architecture, load_generator,
                                  read_state_dict, save_generator)
from compress.models import build_generator

H2Z_SHA256 = "0ab6b7a4312a94187078a631608d89f2d5ab8036e4469b4a56508cf27faf3e78"
H2Z = {"arch": "sub_mobile_resnet_9blocks", "config": "16_16_32_16_32_32_16_16"}


def test_released_h2z_generator_loads_strictly_and_runs(h2z_checkpoint):
    assert hashlib.sha256(h2z_checkpoint.read_bytes()).hexdigest() == H2Z_SHA256
    model, meta = load_generator(str(h2z_checkpoint), **H2Z)
    assert meta["arch"] == "sub_mobile_resnet_9blocks"
    assert sum(p.numel() for p in model.parameters()) == 356_867
    torch.manual_seed(1)
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        first, second = model(image), model(image)
    assert first.shape == (1, 3, 256, 256)
    assert first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, second)
    assert first.std() > 0.05  # real weights give a real picture, not a constant


def test_released_h2z_generator_is_recognised_from_its_shapes(h2z_checkpoint):
    state, meta = read_state_dict(str(h2z_checkpoint))
    assert meta == {}
    assert guess_architecture(state)[0] == ("sub_mobile_resnet_9blocks",
                                            {"input_nc": 3, "output_nc": 3, "config": H2Z["config"]})
    model, meta = load_generator(str(h2z_checkpoint))  # no arch given: inferred
    assert meta["build"]["config"] == H2Z["config"]


def test_wrong_config_names_file_keys_and_suggestion(h2z_checkpoint):
    with pytest.raises(CheckpointError) as error:
        load_generator(str(h2z_checkpoint), arch="sub_mobile_resnet_9blocks",
                       config="16_16_32_16_32_32_16_24")
    text = str(error.value)
    assert str(h2z_checkpoint) in text
    assert "model.22.weight" in text and "16_16_32_16_32_32_16_16" in text


def test_wrong_architecture_lists_missing_and_unexpected_keys(h2z_checkpoint):
    with pytest.raises(CheckpointError, match="(?s)missing keys.*unexpected keys"):
        load_generator(str(h2z_checkpoint), arch="resnet_9blocks", ngf=16)


def test_truncated_and_foreign_files_get_clear_errors(tmp_path, h2z_checkpoint):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(h2z_checkpoint.read_bytes()[:50_000])
    with pytest.raises(CheckpointError, match="truncated.pth.*truncated or not a PyTorch"):
        load_generator(str(truncated), **H2Z)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_generator(str(text), **H2Z)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(str(tmp_path / "missing.pth"), **H2Z)


def test_empty_and_random_files_are_named_for_what_they_are(tmp_path, capsys):
    empty, noise = tmp_path / "empty.pth", tmp_path / "noise.pth"
    empty.write_bytes(b"")
    noise.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError, match="empty.pth: the file is empty"):
        load_generator(str(empty), **H2Z)
    with pytest.raises(CheckpointError, match="noise.pth: cannot load: the file is corrupt") as error:
        load_generator(str(noise), **H2Z)
    assert "pickled Python objects" not in str(error.value)
    assert main(["inspect", str(empty)]) == 2 and "the file is empty" in capsys.readouterr().err


def test_broken_safetensors_metadata_is_reported_and_convert_repairs_it(tmp_path, capsys):
    from safetensors.torch import save_file

    from compress.models.checkpoints import FORMAT
    model = build_generator("resnet_9blocks", ngf=4, n_blocks=2)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    cases = {"not_json": {"format": FORMAT, "meta": "{oops"}, "a_list": {"format": FORMAT, "meta": "[1]"},
             "missing": {"format": FORMAT}}
    for name, header in cases.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path), metadata=header)
        with pytest.raises(CheckpointError, match=f"{name}.safetensors: .*(JSON|no 'meta').*convert"):
            load_generator(str(path))
    fixed = tmp_path / "fixed.safetensors"
    assert main(["convert", str(tmp_path / "a_list.safetensors"), "-o", str(fixed), "--palette", "facades",
                 "--input-kind", "label"]) == 0
    assert "ignoring it" in capsys.readouterr().err
    _, meta = load_generator(str(fixed))
    assert meta["arch"] == "resnet_9blocks" and meta["palette"] == "facades"


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_never_executed(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model.1.weight": torch.zeros(1), "payload": _Payload()}, str(path))
    with pytest.raises(CheckpointError, match="never executes"):
        load_generator(str(path), **H2Z)
    assert "pickled code ran" not in capsys.readouterr().out


def test_safetensors_round_trip_with_metadata(tmp_path):
    model = build_generator("sub_mobile_resnet_9blocks", config="8_8_16_8_16_16_8_8").eval()
    path = tmp_path / "g.safetensors"
    meta = save_generator(model, str(path), resolution=(64, 64), palette="facades", input_kind="label")
    assert meta["macs"] > 0 and meta["params"] == sum(p.numel() for p in model.parameters())
    loaded, loaded_meta = load_generator(str(path))  # everything from the file's metadata
    assert loaded_meta["build"] == meta["build"]
    assert (loaded_meta["palette"], loaded_meta["input_kind"], loaded_meta["resolution"]) == \
        ("facades", "label", [64, 64])
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(FileExistsError, match="--force"):
        save_generator(model, str(path))
    save_generator(model, str(path), overwrite=True, resolution=(64, 64))
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write leaves no temp file behind


def test_corrupt_safetensors_is_reported(tmp_path):
    model = build_generator("sub_mobile_resnet_9blocks", config="8_8_8_8_8_8_8_8")
    path = tmp_path / "g.safetensors"
    save_generator(model, str(path), profile=False)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="g.safetensors.*truncated"):
        load_generator(str(path))


def test_convert_cli(tmp_path, h2z_checkpoint, capsys):
    out = tmp_path / "h2z.safetensors"
    argv = ["convert", str(h2z_checkpoint), "--arch", "sub_mobile_resnet_9blocks",
            "--config", H2Z["config"], "-o", str(out), "--input-kind", "image"]
    assert main(argv) == 0
    assert "2.55G MACs" in capsys.readouterr().out
    model, meta = load_generator(str(out))
    assert meta["source"] == h2z_checkpoint.name and meta["input_kind"] == "image"
    assert main(argv) == 2  # refuses to overwrite without --force
    assert "--force" in capsys.readouterr().err
    assert main(["inspect", str(out)]) == 0
    assert '"config": "16_16_32_16_32_32_16_16"' in capsys.readouterr().out


@pytest.mark.parametrize("spectral", [False, True])
def test_spade_teacher_official_pth_is_recognised(tmp_path, spectral):
    model = build_generator("spade", semantic_nc=13, ngf=4, spectral_norm=spectral).eval()
    path = tmp_path / "latest_net_G.pth"
    torch.save(model.state_dict(), str(path))
    loaded, meta = load_generator(str(path))  # arch, ngf, channels and spectral norm from shapes
    assert meta["arch"] == "spade"
    assert meta["build"]["semantic_nc"] == 13 and meta["build"]["ngf"] == 4
    assert meta["build"].get("spectral_norm", False) == spectral
    seg = torch.nn.functional.one_hot(torch.randint(0, 13, (1, 64, 64)), 13).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        assert torch.equal(model(seg), loaded(seg))


def test_sub_spade_round_trip_keeps_supernet_width_norm_buffers(tmp_path):
    model = build_generator("sub_mobile_spade", semantic_nc=13, ngf=8, config="8_4_8_4_8_4_8_4").eval()
    path = tmp_path / "spade.safetensors"
    save_generator(model, str(path), resolution=(64, 64), palette="facades")
    loaded, meta = load_generator(str(path))
    assert meta["build"]["config"] == "8_4_8_4_8_4_8_4" and meta["input_kind"] == "label"
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_every_command_reports_an_empty_checkpoint_in_one_line(tmp_path, capsys):
    """compress.checkpoints inspect, export.onnx and engines.bench used to raise IndexError."""
    from engines.bench import main as bench_main
    from export.onnx import main as export_main
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for command in (lambda: main(["inspect", str(empty)]),
                    lambda: export_main([str(empty), "-o", str(tmp_path / "x.onnx")]),
                    lambda: bench_main([str(empty), "--runs", "1", "--warmup", "0"])):
        assert command() == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert error.startswith("error: ") and "empty.pth" in error and "empty" in error


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "convert latest_net_G.pth" in text and "inspect" in text
