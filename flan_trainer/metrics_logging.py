"""Training-time reporting: TensorBoard scalars through clu, a progress bar, and throughput.

Only process 0 writes summaries and draws the bar; every process computes the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import jax
import numpy as np
from clu import metric_writers
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def summarize_step_metrics(sums: Mapping[str, float]) -> dict[str, float]:
    """Turns the summed metrics of one or more steps into the scalars we log.

    `sums` holds totals as returned by train_step (loss terms already normalised per step,
    counts as sums), plus `num_steps`. Accuracy is token-weighted over the whole window.
    """
    steps = max(float(sums.get("num_steps", 1.0)), 1.0)
    weight = max(float(sums.get("weight_sum", 0.0)), 1e-9)
    out = {
        "loss": float(sums["loss"]) / steps,
        "cross_ent_loss": float(sums.get("cross_ent_loss", 0.0)) / steps,
        "z_loss": float(sums.get("z_loss", 0.0)) / steps,
        "accuracy": float(sums.get("correct", 0.0)) / weight,
    }
    for key in ("learning_rate", "grad_norm"):
        if key in sums:
            out[key] = float(sums[key]) / steps
    return out


class TrainReporter:
    """Accumulates per-step metrics and writes them every `log_every` steps.

    Throughput counts real (non-padding) target tokens and sequences from the host's batches,
    so packing efficiency shows up directly as `non_padding_fraction`.
    """

    def __init__(self, model_dir: str, first_step: int, total_steps: int, log_every: int,
                 flops_per_step: float | None = None, peak_flops: float | None = None) -> None:
        self.is_chief = jax.process_index() == 0
        self.writer = metric_writers.create_default_writer(model_dir, just_logging=not self.is_chief)
        self.log_every = max(1, log_every)
        self.flops_per_step = flops_per_step
        self.peak_flops = peak_flops
        self.bar = tqdm(total=total_steps, initial=first_step, disable=not self.is_chief,
                        dynamic_ncols=True, desc="train", unit="step")
        self._reset()
        self.last_scalars: dict[str, float] = {}

    def _reset(self) -> None:
        self.window: dict[str, float] = {}
        self.window_start = time.perf_counter()
        self.window_tokens = 0.0
        self.window_slots = 0.0
        self.window_seqs = 0.0

    def add(self, step: int, metrics: Mapping[str, jax.Array], target_slots: int) -> None:
        """Records one finished step: its summed metrics and the global batch's target positions.

        Real target tokens and sequences come from the step's own `weight_sum` and
        `num_sequences` (packed segments count one each), so nothing is read back from the batch.
        """
        for key, value in metrics.items():
            self.window[key] = self.window.get(key, 0.0) + float(np.asarray(value))
        self.window["num_steps"] = self.window.get("num_steps", 0.0) + 1.0
        self.window_tokens += float(metrics["weight_sum"])
        self.window_slots += float(target_slots)
        self.window_seqs += float(metrics["num_sequences"])
        self.bar.update(1)
        if step % self.log_every == 0:
            self.flush(step)

    def flush(self, step: int) -> None:
        """Writes the window's scalars (if any steps were recorded) and starts a new window."""
        if not self.window:
            return
        elapsed = max(time.perf_counter() - self.window_start, 1e-9)
        scalars = summarize_step_metrics(self.window)
        steps = self.window["num_steps"]
        scalars["timing/steps_per_second"] = steps / elapsed
        scalars["timing/seqs_per_second"] = self.window_seqs / elapsed
        scalars["timing/target_tokens_per_second"] = self.window_tokens / elapsed
        scalars["non_padding_fraction"] = self.window_tokens / max(self.window_slots, 1.0)
        if self.flops_per_step and self.peak_flops:
            achieved = self.flops_per_step * steps / elapsed / jax.device_count()
            scalars["timing/mfu"] = achieved / self.peak_flops
        self.writer.write_scalars(step, scalars)
        self.bar.set_postfix(loss=f"{scalars['loss']:.3f}", acc=f"{scalars['accuracy']:.3f}",
                             tok_s=f"{scalars['timing/target_tokens_per_second']:.0f}")
        self.last_scalars = scalars
        self._reset()

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.writer.write_scalars(step, dict(scalars))

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()
