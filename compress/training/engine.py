"""The training loop shared by every stage: epochs, LR schedule, checkpoints, resume, signals,
logging, validation and export around a `Recipe`'s ``train_step``.

Run folder (``run_dir``):
  train_state.pt              resume checkpoint (`compress.training.state`), rewritten atomically
                              every ``save_every_steps`` steps, at each epoch end and on a stop
  metrics.json                validation history and the best score
  <G>_best.safetensors        best generator so far (project format, `save_generator`)
  <G>_final.safetensors       generator(s) at the end of training
  tensorboard/                scalars and image grids

Resume: when ``train_state.pt`` exists the run continues from it: weights, optimisers, LR
schedules, counters, best score, and each rank's RNG states and recipe extras. The data order
and augmentation are functions of (seed, epoch, index) (`compress.data.EpochSampler`) and the
loader draws its worker seed from its own generator, so a resumed run repeats the uninterrupted
run step for step. SIGINT/SIGTERM finish the current step, save and return 128 + signal number;
a second Ctrl-C (SIGINT) aborts at once. ``max_steps`` stops (and saves) after that many steps in total.

Learning rate: constant for ``nepochs`` epochs, then linearly decayed over ``nepochs_decay``
epochs (upstream's rule: factor 1 - max(0, epoch + 1 - nepochs) / (nepochs_decay + 1)).
"""
import json
import math
import os
import signal
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from compress.common.atomic import atomic_write
from compress.data import EpochSampler
from compress.training import distributed as D
from compress.training.monitor import Monitor
from compress.training.recipe import Recipe
from compress.training.state import (load_training_state, preserved_rng, rng_state, save_training_state,
                                     seed_everything, set_rng_state, to_device)

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.json"

# exporter(name, generator, path, extra_metadata) writes a generator file (rank 0 only)
Exporter = Callable[[str, nn.Module, str, Dict[str, Any]], None]
# evaluator(translate) -> {metric: value}; attributes: primary (str), higher_is_better (bool)
Evaluator = Any


def linear_decay(nepochs: int, nepochs_decay: int) -> Callable[[int], float]:
    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - nepochs) / float(nepochs_decay + 1)
    return factor


class Trainer:
    def __init__(self, recipe: Recipe, dataset: Dataset, ctx: D.DistContext, *, run_dir: str,
                 batch_size: int, nepochs: int, nepochs_decay: int, seed: int, num_workers: int = 0,
                 save_every_steps: int = 500, max_steps: Optional[int] = None, log_every_steps: int = 20,
                 image_every_steps: int = 500, evaluator: Optional[Evaluator] = None,
                 eval_every_epochs: int = 1, exporter: Optional[Exporter] = None, tensorboard: bool = True,
                 step_callback: Optional[Callable[[int], None]] = None, description: str = "train"):
        if batch_size < 1 or nepochs < 0 or nepochs_decay < 0 or nepochs + nepochs_decay < 1:
            raise ValueError("need batch_size >= 1 and nepochs + nepochs_decay >= 1")
        self.recipe, self.dataset, self.ctx = recipe, dataset, ctx
        self.run_dir, self.batch_size, self.seed = run_dir, batch_size, seed
        self.num_workers = num_workers
        self.total_epochs = nepochs + nepochs_decay
        self.save_every_steps, self.max_steps = max(1, save_every_steps), max_steps
        self.log_every_steps, self.image_every_steps = max(1, log_every_steps), max(1, image_every_steps)
        self.evaluator, self.eval_every_epochs = evaluator, max(1, eval_every_epochs)
        self.exporter, self.tensorboard, self.description = exporter, tensorboard, description
        self.step_callback = step_callback
        self.sampler = EpochSampler(dataset, shuffle=True, seed=seed, distributed=ctx.distributed)
        self.steps_per_epoch = math.ceil(len(self.sampler) / batch_size)
        decay = linear_decay(nepochs, nepochs_decay)
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, decay)
                           for name, opt in recipe.optimizers.items()}
        self.step = self.epoch = self.batch_in_epoch = 0
        self.finished = False
        self.best: Dict[str, Any] = {}
        self.history: List[Dict[str, Any]] = []
        self._signal: Optional[int] = None  # the first stop signal received
        self._interrupts = 0  # Ctrl-C count: the second one aborts
        self.monitor: Optional[Monitor] = None

    # ------------------------------------------------------------------------- paths

    @property
    def state_path(self) -> str:
        return os.path.join(self.run_dir, STATE_FILE)

    def export_path(self, name: str, tag: str) -> str:
        return os.path.join(self.run_dir, f"{name}_{tag}.safetensors")

    # ------------------------------------------------------------------------- state

    def _collect_state(self) -> Optional[Dict[str, Any]]:
        """Checkpoint contents on rank 0 (None elsewhere); every rank must call it."""
        ranks = D.gather_objects({"rng": rng_state(), "recipe": self.recipe.rank_state()}, self.ctx)
        if not self.ctx.is_main:
            return None
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "world_size": self.ctx.world_size, "batch_size": self.batch_size, "finished": self.finished,
                "modules": {k: m.state_dict() for k, m in self.recipe.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.recipe.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "ranks": to_device(ranks, torch.device("cpu")), "best": dict(self.best),
                "history": list(self.history)}

    def save(self) -> None:
        state = self._collect_state()
        if state is not None:
            save_training_state(self.state_path, state)
        D.barrier(self.ctx)

    def _restore(self, state: Dict[str, Any]) -> None:
        if state.get("batch_size") != self.batch_size or state.get("world_size") != self.ctx.world_size:
            if state.get("batch_in_epoch", 0):
                raise ValueError(
                    f"{self.state_path} was saved mid-epoch with batch_size {state.get('batch_size')} on "
                    f"{state.get('world_size')} process(es); resume with the same batch_size and process "
                    "count (or pass --force to start over)")
        for name, module in self.recipe.modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.recipe.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch, self.finished = state["batch_in_epoch"], state["finished"]
        self.best, self.history = dict(state["best"]), list(state["history"])
        ranks = state["ranks"]
        if len(ranks) == self.ctx.world_size:
            mine = ranks[self.ctx.rank]
            set_rng_state(mine["rng"])
            self.recipe.load_rank_state(to_device(mine["recipe"], self.ctx.device))
        else:  # a different process count: the run goes on, no longer bit-reproducible
            seed_everything(self.seed + 7919 * (self.step + 1) + self.ctx.rank)

    # ------------------------------------------------------------------------- signals

    def _install_signal_handlers(self) -> Dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            # Only a repeated Ctrl-C aborts. SIGTERM may legitimately arrive twice or after a
            # SIGINT (torchrun forwards SIGTERM to its workers when it gets Ctrl-C itself; batch
            # schedulers signal every process of a job), and must not cost the final save.
            if signum == signal.SIGINT:
                self._interrupts += 1
                if self._interrupts > 1:
                    signal.signal(signum, signal.SIG_DFL)
                    raise KeyboardInterrupt
            if self._signal is None:
                self._signal = signum
                if self.monitor is not None:
                    self.monitor.note(f"{signal.Signals(signum).name}: finishing this step, saving a "
                                      "checkpoint, then stopping (Ctrl-C again aborts without saving)")

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: Dict[int, Any]) -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    # ------------------------------------------------------------------------- loop

    def _loader(self) -> DataLoader:
        # Own generator: creating the loader must not draw from the global torch RNG, which the
        # checkpoint restores and the training step consumes.
        generator = torch.Generator()
        generator.manual_seed((self.seed * 1_000_003 + self.epoch) * 131 + self.ctx.rank)
        self.sampler.set_epoch(self.epoch, skip=self.batch_in_epoch * self.batch_size)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler,
                          num_workers=self.num_workers, generator=generator,
                          pin_memory=self.ctx.device.type == "cuda")

    def _should_stop(self) -> bool:
        wanted = self._signal is not None or (self.max_steps is not None and self.step >= self.max_steps)
        return D.any_rank(wanted, self.ctx)

    def fit(self) -> int:
        """Train to the end (0), or until max_steps (0) or a signal (128 + signum); returns the code."""
        resumed = os.path.isfile(self.state_path)
        if resumed:
            self._restore(load_training_state(self.state_path))
        else:
            seed_everything(self.seed + self.ctx.rank)
        total = self.total_epochs * self.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        self.monitor = Monitor(self.run_dir, self.ctx.is_main, total, min(self.step, total),
                               self.tensorboard, self.description)
        if resumed:
            self.monitor.note(f"resuming {self.state_path} at step {self.step} (epoch {self.epoch + 1}, "
                              f"batch {self.batch_in_epoch}/{self.steps_per_epoch})")
        previous = self._install_signal_handlers()
        try:
            return self._run()
        finally:
            self._restore_signal_handlers(previous)
            self.monitor.close()

    def _run(self) -> int:
        if self.finished:
            self.monitor.note(f"{self.run_dir}: training already finished (pass --force to train again)")
            self._export_final(only_missing=True)
            return 0
        stop = self._should_stop()
        self.recipe.train(True)
        while self.epoch < self.total_epochs and not stop:
            for batch in self._loader():
                losses = self.recipe.train_step(batch)
                self.step += 1
                self.batch_in_epoch += 1
                self._log(losses)
                if self.step_callback is not None:
                    self.step_callback(self.step)
                stop = self._should_stop()
                if stop:
                    break
                if self.step % self.save_every_steps == 0:
                    self.save()
            if stop:
                break
            self._end_epoch()
            stop = self._should_stop()
        if self.epoch >= self.total_epochs:
            self.finished = True
            self._export_final()
            self.save()
            self.monitor.note(f"finished {self.total_epochs} epochs ({self.step} steps): {self.run_dir}")
            return 0
        self.save()
        if self._signal is not None:
            self.monitor.note(f"stopped at step {self.step}; saved {self.state_path}; "
                              "run the same command again to resume")
            return 128 + int(self._signal)
        self.monitor.note(f"stopped at max_steps={self.max_steps}; saved {self.state_path}; "
                          "run again without --max_steps (or with a larger one) to continue")
        return 0

    def _end_epoch(self) -> None:
        with warnings.catch_warnings():
            # a run resumed at an epoch end steps the schedule before any optimiser step of this
            # process; torch warns about that order, but the schedule value is the same
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*before.*optimizer.step")
            for scheduler in self.schedulers.values():
                scheduler.step()
        self.epoch += 1
        self.batch_in_epoch = 0
        last = self.epoch == self.total_epochs
        if self.evaluator is not None and (self.epoch % self.eval_every_epochs == 0 or last):
            self._evaluate()
        self.save()

    # ------------------------------------------------------------------------- logging

    def _log(self, losses: Dict[str, float]) -> None:
        self.monitor.step(losses, self.epoch + 1)
        if self.step % self.log_every_steps == 0:
            mean = D.mean_over_ranks(losses, self.ctx)
            lrs = {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.recipe.optimizers.items()}
            self.monitor.scalars(self.step, mean, "loss/")
            self.monitor.scalars(self.step, lrs, "lr/")
        if self.step % self.image_every_steps == 0 and self.ctx.is_main:
            shown = {k: v[:4] for k, v in self.recipe.visuals.items() if v.dim() == 4 and v.size(1) == 3}
            if shown:  # one row per sample: the recipe's visuals side by side
                rows = torch.stack(list(shown.values()), 1).flatten(0, 1)
                self.monitor.images(self.step, "train/" + "|".join(shown), rows, len(shown))

    # ------------------------------------------------------------------------- evaluation / export

    def _evaluate(self) -> None:
        if self.ctx.is_main:
            generator = next(iter(self.recipe.generators.values()))
            was_training = generator.training
            generator.eval()
            try:
                with preserved_rng(), torch.no_grad():
                    metrics, images = self.evaluator(self.recipe.translate)
            finally:
                generator.train(was_training)
            record = {"epoch": self.epoch, "step": self.step, **metrics}
            self.history.append(record)
            self.monitor.scalars(self.step, metrics, "val/")
            if images is not None:
                self.monitor.images(self.step, "val/input|output|target", images, 3)
            primary = getattr(self.evaluator, "primary", None)
            summary = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            if primary in metrics:
                value, higher = float(metrics[primary]), bool(self.evaluator.higher_is_better)
                old = self.best.get("value")
                if old is None or (value > old if higher else value < old):
                    self.best = {"metric": primary, "value": value, "epoch": self.epoch, "step": self.step}
                    self._export("best", {"best_" + primary: value, "epoch": self.epoch})
                    summary += " (best)"
            self.monitor.note(f"epoch {self.epoch}: {summary}")
            self._write_metrics()
        D.barrier(self.ctx)

    def _write_metrics(self) -> None:
        text = json.dumps({"best": self.best, "history": self.history}, indent=2) + "\n"

        def write(temp: str) -> None:
            with open(temp, "w", encoding="utf-8") as handle:
                handle.write(text)

        atomic_write(os.path.join(self.run_dir, METRICS_FILE), write, overwrite=True)

    def _export(self, tag: str, extra: Dict[str, Any], names: Optional[List[str]] = None) -> None:
        if self.exporter is None or not self.ctx.is_main:
            return
        with preserved_rng():  # building the export copy initialises weights from the global RNG
            for name, generator in self.recipe.generators.items():
                if names is None or name in names:
                    self.exporter(name, generator, self.export_path(name, tag),
                                  dict(extra, epochs=self.epoch, steps=self.step))

    def _export_final(self, only_missing: bool = False) -> None:
        if self.exporter is None or not self.ctx.is_main:
            return
        names = [n for n in self.recipe.generators
                 if not (only_missing and os.path.isfile(self.export_path(n, "final")))]
        if names:
            self._export("final", {}, names)
            self.monitor.note(f"wrote {', '.join(self.export_path(n, 'final') for n in names)}"
                              + (f" (best: {self.export_path(names[0], 'best')})" if self.best else ""))
