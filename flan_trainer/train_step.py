"""One optimisation step (with exact gradient accumulation) and one evaluation step.

Loss normalisation is global: the denominator (``model.loss_denominator``) is computed once from
the whole batch and handed to every microbatch's ``loss_fn`` as ``normalizer``, so the summed
microbatch losses and gradients equal the full-batch ones for any ``num_microbatches``
(token-exact for NUM_REAL_TARGET_TOKENS and AVERAGE_PER_SEQUENCE alike). Gradients and metrics
accumulate in float32 inside a ``lax.scan`` and the optimizer is applied once.

Microbatch ``i`` takes rows ``i, i + M, i + 2M, ...`` of the batch (a reshape to ``[B/M, M]``
and a transpose), not a contiguous block: with the batch dimension sharded over 'data', every
device then already holds its part of every microbatch and no data moves between devices.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from flan_trainer import optimizers, partitioning
from flan_trainer.train_state import TrainState

Batch = Mapping[str, jax.Array]
Metrics = dict[str, jax.Array]


class NonFiniteError(FloatingPointError):
    """Raised by ``raise_if_nonfinite`` when a loss or gradient norm is NaN or infinite."""


def split_microbatches(batch: Batch, num_microbatches: int) -> dict[str, jax.Array]:
    """Reshapes every ``[B, ...]`` feature to ``[M, B / M, ...]`` with strided rows (see module doc)."""
    out = {}
    for name, x in batch.items():
        size = x.shape[0]
        if size % num_microbatches:
            raise ValueError(
                f"feature {name!r} has batch size {size}, not divisible by num_microbatches="
                f"{num_microbatches}; pick num_microbatches dividing {size}."
            )
        x = x.reshape((size // num_microbatches, num_microbatches) + x.shape[1:])
        out[name] = jnp.swapaxes(x, 0, 1)
    return out


def _tree_add_f32(acc: Any, new: Any) -> Any:
    return jax.tree.map(lambda a, b: a + b.astype(jnp.float32), acc, new)


def _zeros_f32(tree: Any) -> Any:
    return jax.tree.map(lambda x: jnp.zeros(x.shape, jnp.float32), tree)


def _grad_fn(model: Any, denominator: jax.Array) -> Callable:
    def loss(params, batch, rng):
        return model.loss_fn(params, batch, rng, normalizer=denominator)

    return jax.value_and_grad(loss, has_aux=True)


def _accumulate(
    grad_fn: Callable, params: Any, batch: Batch, dropout_rng: jax.Array | None, num_micro: int
) -> tuple[Any, Metrics]:
    """Sums float32 gradients and metrics over microbatches with ``lax.scan``."""
    micro = split_microbatches(batch, num_micro)
    first = jax.tree.map(lambda x: x[0], micro)
    (_, metric_shapes), grad_shapes = jax.eval_shape(grad_fn, params, first, dropout_rng)

    def body(carry, xs):
        grads_acc, metrics_acc = carry
        index, mb = xs
        rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, index)
        (_, metrics), grads = grad_fn(params, mb, rng)
        return (_tree_add_f32(grads_acc, grads), _tree_add_f32(metrics_acc, metrics)), None

    init = (_zeros_f32(grad_shapes), _zeros_f32(metric_shapes))
    (grads, metrics), _ = jax.lax.scan(body, init, (jnp.arange(num_micro), micro))
    return grads, metrics


def train_step(
    model: Any,
    optimizer: optax.GradientTransformation,
    state: TrainState,
    batch: Batch,
    dropout_rng: jax.Array | None,
    num_microbatches: int = 1,
) -> tuple[TrainState, Metrics]:
    """One update; pure (jit it with ``make_train_step``). Returns ``(new_state, metrics)``.

    ``metrics`` holds the model's summed metrics for the whole batch (loss, cross_ent_loss,
    z_loss, correct, weight_sum, num_sequences), plus ``loss_denominator``, ``grad_norm`` (global
    L2 norm of the accumulated gradient) and ``learning_rate`` (when the optimizer keeps it in its
    state, as ``optimizers.adafactor`` does). With dropout, microbatch ``i`` uses
    ``fold_in(dropout_rng, i)``, so only dropout-free runs match the single-batch step exactly.
    """
    if num_microbatches < 1:
        raise ValueError(f"num_microbatches must be >= 1, got {num_microbatches}.")
    denominator = model.loss_denominator(batch)
    grad_fn = _grad_fn(model, denominator)
    if num_microbatches == 1:
        (_, metrics), grads = grad_fn(state.params, batch, dropout_rng)
        grads = jax.tree.map(lambda g: g.astype(jnp.float32), grads)
    else:
        grads, metrics = _accumulate(grad_fn, state.params, batch, dropout_rng, num_microbatches)
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics)
    metrics["loss_denominator"] = jnp.asarray(denominator, jnp.float32)
    metrics["grad_norm"] = optax.tree.norm(grads)
    lr = optimizers.current_learning_rate(opt_state)
    if lr is not None:
        metrics["learning_rate"] = jnp.asarray(lr, jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, metrics


def eval_step(model: Any, params: Any, batch: Batch) -> Metrics:
    """Summed metrics for one batch without dropout (``dropout_rng=None``)."""
    _, metrics = model.loss_fn(params, batch, None)
    return dict(metrics)


def _leading_dim(batch: Batch) -> int:
    sizes = {int(np.shape(x)[0]) for x in batch.values()}
    if len(sizes) != 1:
        raise ValueError(f"batch features disagree on the batch size: {sorted(sizes)}.")
    return sizes.pop()


def make_train_step(
    model: Any,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    state_shardings: TrainState,
    rules: partitioning.LogicalRules,
    num_microbatches: int = 1,
    activation_constraints: bool = True,
) -> Callable[[TrainState, Batch, jax.Array | None], tuple[TrainState, Metrics]]:
    """Jits ``train_step`` with NamedSharding in/out shardings and the state donated.

    The returned ``step(state, batch, dropout_rng)`` first checks the batch size against the
    data axis and ``num_microbatches`` (clear error instead of an XLA one). ``step.lower(...)``
    lowers the jitted function (same arguments) for ahead-of-time compilation and memory
    analysis. With ``activation_constraints`` the call runs under ``jax.set_mesh(mesh)`` so the
    model's logical activation constraints (batch over 'data', heads/mlp over 'model') take
    effect, as in T5X; without it XLA propagates shardings from the inputs alone.
    """

    # Named so that jax's module (and compilation-cache log lines) read 'jit_flan_train_step'.
    def flan_train_step(state, batch, rng):
        with partitioning.axis_rules(rules):
            return train_step(model, optimizer, state, batch, rng, num_microbatches)

    rep = partitioning.replicated(mesh)
    jitted = jax.jit(
        flan_train_step,
        in_shardings=(state_shardings, partitioning.batch_sharding(mesh), rep),
        out_shardings=(state_shardings, rep),
        donate_argnums=(0,),
    )

    def step(state: TrainState, batch: Batch, dropout_rng: jax.Array | None):
        partitioning.check_batch_size(_leading_dim(batch), mesh, num_microbatches)
        with _mesh_context(mesh, activation_constraints):
            return jitted(state, batch, dropout_rng)

    def lower(*args: Any, **kwargs: Any) -> Any:
        with _mesh_context(mesh, activation_constraints):
            return jitted.lower(*args, **kwargs)

    step.lower = lower  # type: ignore[attr-defined]
    return step


def _mesh_context(mesh: Mesh, enabled: bool) -> contextlib.AbstractContextManager:
    # jax.set_mesh must wrap the jitted call (it is rejected inside a trace).
    return jax.set_mesh(mesh) if enabled else contextlib.nullcontext()


def make_eval_step(
    model: Any,
    mesh: Mesh,
    params_shardings: Any,
    rules: partitioning.LogicalRules,
    activation_constraints: bool = True,
) -> Callable[[Any, Batch], Metrics]:
    """Jits ``eval_step`` with the params' shardings and the batch over 'data'."""

    def flan_eval_step(params, batch):
        with partitioning.axis_rules(rules):
            return eval_step(model, params, batch)

    jitted = jax.jit(
        flan_eval_step,
        in_shardings=(params_shardings, partitioning.batch_sharding(mesh)),
        out_shardings=partitioning.replicated(mesh),
    )

    def step(params: Any, batch: Batch) -> Metrics:
        partitioning.check_batch_size(_leading_dim(batch), mesh)
        with _mesh_context(mesh, activation_constraints):
            return jitted(params, batch)

    return step


def nonfinite_metrics(
    metrics: Mapping[str, Any], keys: tuple[str, ...] = ("loss", "grad_norm")
) -> list[str]:
    """Names of the watched metrics (default loss and grad_norm) that are NaN or infinite."""
    bad = []
    for key in keys:
        if key in metrics and not math.isfinite(float(np.asarray(metrics[key]))):
            bad.append(key)
    return bad


def raise_if_nonfinite(metrics: Mapping[str, Any], step: int) -> None:
    """Raises ``NonFiniteError`` naming the step and metrics if loss or grad norm is NaN/inf."""
    bad = nonfinite_metrics(metrics)
    if bad:
        values = {k: float(np.asarray(metrics[k])) for k in bad}
        raise NonFiniteError(
            f"non-finite {', '.join(bad)} at step {step}: {values}. Training stopped; lower the "
            "learning rate, check the data for empty targets, or restore the last checkpoint."
        )
