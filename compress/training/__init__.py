"""Training machinery shared by teacher training and the GAN Compression stages.

- `engine.Trainer`: the loop (epochs, LR decay, checkpoints, automatic resume, SIGINT/SIGTERM,
  progress bar, TensorBoard, validation, best/final export) around a recipe's ``train_step``.
- `recipe`: what a recipe provides, weight init, shared optimiser helpers.
- Recipes: `pix2pix.Pix2PixRecipe`, `cycle_gan.CycleGANRecipe`, `gaugan.GauGANRecipe`, and
  `distill_recipe.DistillRecipe` (the GAN Compression student objective).
- `stage` / `stage_config`: the shared runner and settings of the distill, supernet and
  finetune stages; `calibration`: SPADE batch-norm re-calibration.
- `state`: the resumable checkpoint (plain tensors/containers, ``weights_only`` loading) and RNG.
- `distributed`: torchrun / DistributedDataParallel helpers (no-ops in a single process).
- `evaluation.Evaluator`: FID / mIoU / PSNR on a capped validation subset.
- `monitor.Monitor`: tqdm + TensorBoard on the main rank.

Command lines: ``python -m compress.train`` (teachers), ``compress.distill``,
``compress.supernet``, ``compress.finetune`` (students).
"""
from compress.training.distributed import DistContext, setup, teardown
from compress.training.engine import Trainer
from compress.training.recipe import Recipe, init_weights

__all__ = ["Trainer", "Recipe", "init_weights", "DistContext", "setup", "teardown"]
