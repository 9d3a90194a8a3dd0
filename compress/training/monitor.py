"""What a training run shows while it runs: a tqdm progress bar with losses and ETA, notes
printed above it, TensorBoard scalars and image grids.

Only the main rank (rank 0) shows or writes anything; on the other ranks every method is a
no-op. TensorBoard needs the ``tensorboard`` package; without it the run goes on with a
one-line note and the progress bar only.
"""
import os
from typing import Dict, Optional

import torch
from tqdm import tqdm


def image_grid(rows: torch.Tensor, columns: int) -> torch.Tensor:
    """Tile ``rows`` [N, 3, H, W] in [-1, 1] into one [3, H*ceil(N/columns), W*columns] image in
    [0, 1] (no torchvision needed)."""
    n, c, h, w = rows.shape
    nrows = -(-n // columns)
    grid = rows.new_ones((c, nrows * h, columns * w))
    for i in range(n):
        r, col = divmod(i, columns)
        grid[:, r * h:(r + 1) * h, col * w:(col + 1) * w] = rows[i]
    return ((grid.clamp(-1, 1) + 1) / 2).cpu()


class Monitor:
    def __init__(self, log_dir: Optional[str], enabled: bool, total_steps: int, initial_step: int = 0,
                 tensorboard: bool = True, description: str = "train"):
        self.enabled = enabled
        self.writer = None
        if enabled and tensorboard and log_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.note("TensorBoard logging off: `pip install tensorboard` to enable it")
            else:
                self.writer = SummaryWriter(os.path.join(log_dir, "tensorboard"),
                                            purge_step=initial_step or None)
        self.bar = tqdm(total=total_steps, initial=initial_step, desc=description, unit="step",
                        dynamic_ncols=True, disable=not enabled, smoothing=0.1)

    def note(self, message: str) -> None:
        if self.enabled:
            tqdm.write(message)

    def step(self, losses: Dict[str, float], epoch: int) -> None:
        if self.enabled:
            self.bar.set_postfix({"ep": epoch, **{k: f"{v:.3f}" for k, v in losses.items()}}, refresh=False)
            self.bar.update(1)

    def scalars(self, step: int, values: Dict[str, float], prefix: str = "") -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(prefix + key, float(value), step)

    def images(self, step: int, tag: str, images: torch.Tensor, columns: int) -> None:
        if self.writer is not None and images.numel():
            self.writer.add_image(tag, image_grid(images.detach().float(), columns), step)

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
