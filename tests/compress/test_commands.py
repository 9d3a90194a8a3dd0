"""What every ``python -m compress.<command>`` shares: ``--help`` exits 0 and explains the command
with examples and every setting of its config, and bad settings end in one ``error:`` line."""
import importlib

import pytest

# command -> (a phrase of its examples, a setting line its --help must list)
HELP = {
    "train": ("torchrun --nproc_per_node", "lambda_l1 (float, default 100.0)"),
    "supernet": ("torchrun --nproc_per_node", "sampling (str, default \"uniform\")"),
    "distill": ("python -m compress.distill", "cutmix_prob (float, default 0.0)"),
    "finetune": ("python -m compress.finetune", "restore_D (str or none, default none)"),
    "extract": ("python -m compress.extract", "calibration_images (int, default 256)"),
    "search": ("python -m compress.search merge", "budget_latency_ms (float or none, default none)"),
    "evaluate": ("python -m compress.evaluate", "bootstrap (int, default 1000)"),
    "pipeline": ("python -m compress.pipeline", "flow (str, default \"fast\")"),
    "train_segmenter": ("python -m compress.train_segmenter", "dataroot (str"),
    "checkpoints": ("python -m compress.checkpoints convert", "inspect"),
    "profile": ("python -m compress.profile --arch", "--size"),
}


@pytest.mark.parametrize("command", sorted(HELP))
def test_help_explains_with_examples_and_settings(command, capsys):
    main = importlib.import_module(f"compress.{command}").main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    example, setting = HELP[command]
    assert example in text and setting in text


@pytest.mark.parametrize("command", ["train", "supernet", "distill", "finetune", "extract", "search",
                                     "evaluate", "train_segmenter"])
def test_a_bad_setting_is_one_line_and_exit_code_2(command, capsys):
    main = importlib.import_module(f"compress.{command}").main
    assert main(["--no_such_setting=1"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "\n" not in error and "no_such_setting" in error
