"""The training loop: restore or initialise, then step, log, evaluate and checkpoint.

`train` is gin-configurable with T5X's macro names (see gin/runs/finetune.gin). It never imports
`evals`; in-loop evaluation arrives as `eval_hooks`, callables bound in gin.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gin
import jax
import optax
import seqio

from flan_trainer import checkpoints, flops, gin_utils, input_pipeline, partitioning, tasks_setup
from flan_trainer import train_state as train_state_lib
from flan_trainer.faults import PreemptionWatcher, check_finite_loss
from flan_trainer.metrics_logging import TrainReporter
from flan_trainer.restore_fallback import restore_latest
from flan_trainer.train_step import make_train_step

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainContext:
    """What an evaluation hook needs to know about the run."""

    model: Any
    mesh: jax.sharding.Mesh
    rules: Any
    model_dir: str
    vocabulary: seqio.Vocabulary
    suite: str
    held_out_cluster: str | None
    mixture: str
    reporter: TrainReporter | None = None


# hook(ctx, step, params, final) -> scalars to log (or None)
EvalHook = Callable[[TrainContext, int, Any, bool], Mapping[str, float] | None]


@dataclasses.dataclass
class TrainResult:
    """What a finished (or stopped) run reports back."""

    start_step: int
    final_step: int
    losses: dict[int, float]
    restored_from: str
    stopped_by: str  # "completed" | "preempted"
    last_scalars: dict[str, float]


def _model_feature_lengths(model: Any, task_feature_lengths: Mapping[str, int]) -> dict[str, int]:
    return model.feature_converter_cls(pack=False).get_model_feature_lengths(dict(task_feature_lengths))


def _absolute(path: str) -> str:
    # Orbax needs absolute local paths; remote URLs (gs://...) are kept as they are.
    return path if "://" in str(path) else os.path.abspath(path)


def _seed_or_time(random_seed: int | None) -> int:
    # T5X: RANDOM_SEED=None means a time-based seed; it is then logged and saved in data_state.
    return int(time.time()) % (2**31 - 1) if random_seed is None else int(random_seed)


@gin.configurable(denylist=["dry_run"])
def train(
    *,
    model: Any = gin.REQUIRED,
    model_dir: str = gin.REQUIRED,
    task_feature_lengths: Mapping[str, int] = gin.REQUIRED,
    train_steps: int = gin.REQUIRED,
    batch_size: int = 128,
    task_suite: str = "embedded",
    mixture_or_task_name: str | None = None,
    held_out_cluster: str | None = None,
    vocabulary: seqio.Vocabulary | None = None,
    random_seed: int | None = None,
    num_microbatches: int = 1,
    learning_rate_schedule: optax.Schedule | float = 1e-3,
    optimizer_factory: Callable[..., optax.GradientTransformation] | None = None,
    num_partitions: int | None = 1,
    mesh_shape: tuple[int, int] | None = None,
    logical_axis_rules: Sequence[tuple[str, Any]] | None = None,
    pack: bool = True,
    use_cached_tasks: bool = False,
    checkpoint_period: int = 1000,
    keep_checkpoints: int | None = None,
    initial_checkpoint_path: str | None = None,
    initial_checkpoint_mode: str = "params",
    eval_period: int = 1000,
    eval_hooks: Sequence[EvalHook] = (),
    log_every: int = 10,
    dry_run: bool = False,
) -> TrainResult | None:
    """Instruction-tunes `model` on a mixture; see the module docstring and gin/runs/*.gin."""
    model_dir = _absolute(model_dir)
    initial_checkpoint_path = _absolute(initial_checkpoint_path) if initial_checkpoint_path else None
    vocabulary = vocabulary or tasks_setup.build_vocabulary()
    tasks_setup.register_suite(task_suite, vocabulary)
    mixture = tasks_setup.resolve_training_mixture(task_suite, mixture_or_task_name, held_out_cluster)
    if not dry_run:  # every missing source in one message, before any model is built
        input_pipeline.check_sources(mixture, use_cached_tasks)
    if model.config.vocab_size < vocabulary.vocab_size:
        raise ValueError(
            f"model vocab_size {model.config.vocab_size} is smaller than the task vocabulary's "
            f"{vocabulary.vocab_size}; set network.T5Config.vocab_size to at least that."
        )
    seed = _seed_or_time(random_seed)
    mesh = partitioning.make_mesh(num_partitions=num_partitions, mesh_shape=mesh_shape)
    rules = tuple(logical_axis_rules or partitioning.standard_logical_axis_rules())
    partitioning.check_batch_size(batch_size, mesh, num_microbatches)
    optimizer = (optimizer_factory or _default_optimizer)(learning_rate_schedule)
    lengths = _model_feature_lengths(model, task_feature_lengths)
    input_shapes = {k: (1, v) for k, v in lengths.items()}
    init_rng, dropout_base = jax.random.split(jax.random.PRNGKey(seed))

    def init_fn():
        return train_state_lib.init_sharded_state(model, optimizer, init_rng, input_shapes, mesh, rules)[0]

    abstract_state, shardings = _abstract_state(model, optimizer, init_rng, input_shapes, mesh, rules)
    step_fn = make_train_step(model, optimizer, mesh, shardings, rules, num_microbatches)
    if dry_run:
        from flan_trainer.dry_run import describe_run

        describe_run(model, abstract_state, shardings, step_fn, mesh, mixture, task_feature_lengths, batch_size)
        return None

    state, data_state, source = _restore_or_initialize(
        model_dir, initial_checkpoint_path, initial_checkpoint_mode, init_fn, abstract_state, mesh)
    # Written only once the restore succeeded: a run stopped by a damaged or mismatched
    # checkpoint leaves MODEL_DIR exactly as it found it.
    gin_utils.write_operative_config(model_dir)
    start_step = int(jax.device_get(state.step))
    if data_state and data_state.get("seed") is not None:
        # A resumed run continues the original data order AND dropout rngs: with RANDOM_SEED=None
        # the seed drawn above is a new time-based one, so both must come from the saved seed.
        seed = int(data_state["seed"])
        dropout_base = jax.random.split(jax.random.PRNGKey(seed))[1]
    log.info("%s; starting at step %d of %d (mixture %s, seed %d)", source, start_step, train_steps, mixture, seed)
    if start_step >= train_steps:
        log.warning("MODEL_DIR %s already holds step %d >= TRAIN_STEPS=%d: nothing to train. Raise "
                    "TRAIN_STEPS to continue, or use a new MODEL_DIR to start over.", model_dir, start_step, train_steps)
        return TrainResult(start_step, start_step, {}, source, "completed", {})
    data_step = int(data_state["steps"]) if data_state else 0
    # data_state comes only with a resume from MODEL_DIR's latest checkpoint, which then holds
    # each host's input iterator state (or not: older checkpoints resume by replay).
    resume_dir = checkpoints.step_dir(model_dir, start_step) if data_state else None
    train_iter = input_pipeline.get_train_iterator(
        mixture, task_feature_lengths, batch_size, model.feature_converter_cls, mesh, seed,
        shuffle=True, pack=pack, use_cached_tasks=use_cached_tasks, start_step=data_step,
        resume_dir=resume_dir)
    ckpt = checkpoints.CheckpointManager(model_dir, keep=keep_checkpoints, period=checkpoint_period)
    flops_per_step = flops.train_flops_per_step(
        model.config, batch_size, lengths.get("encoder_input_tokens", 0), lengths["decoder_target_tokens"])
    reporter = TrainReporter(model_dir, start_step, train_steps, log_every, flops_per_step,
                             flops.peak_flops_per_device(jax.devices()[0].device_kind))
    ctx = TrainContext(model, mesh, rules, model_dir, vocabulary, task_suite, held_out_cluster, mixture, reporter)
    watcher = PreemptionWatcher().install()
    try:
        return _loop(state, step_fn, train_iter, ckpt, reporter, watcher, ctx, start_step, train_steps,
                     dropout_base, eval_period, eval_hooks, source)
    finally:
        watcher.uninstall()
        reporter.close()
        ckpt.close()


def _restore_or_initialize(model_dir, initial_path, mode, init_fn, abstract_state, mesh):
    """T5X's restore order, with INITIAL_CHECKPOINT_PATH in any supported layout.

    Orbax checkpoints (ours or T5X's) go through `checkpoints`; Hugging Face and legacy T5X
    checkpoints are imported tensor by tensor straight into the model's shardings. Those two
    carry no optimizer state of ours, so they always start a fresh optimizer.
    """
    if checkpoints.complete_steps(model_dir):
        # RESTORE_FALLBACK (gin: restore_latest.fallback) decides what a damaged latest step does.
        return restore_latest(model_dir, abstract_state)
    if not initial_path:
        return checkpoints.restore_or_initialize(model_dir, initial_path, mode, init_fn, abstract_state)
    from flan_trainer import interop, layer_stacking

    fmt = interop.detect_checkpoint_format(initial_path)  # clear error when it is none of them
    if fmt == "orbax":
        return checkpoints.restore_or_initialize(model_dir, initial_path, mode, init_fn, abstract_state)
    if mode == "full":
        raise ValueError(f"INITIAL_CHECKPOINT_PATH {initial_path} is a {fmt} checkpoint, which holds no "
                         "optimizer state of ours; set INITIAL_CHECKPOINT_MODE = 'params'.")
    imported = interop.load_checkpoint(initial_path, mesh=mesh)
    # Imports come per-layer (T5X/HF naming); a scanned run stacks them (layer_stacking).
    params = layer_stacking.to_layout(imported.params, layer_stacking.is_stacked(abstract_state.params))
    checkpoints.check_compatible(params, abstract_state.params, where=str(initial_path), prefix="params/")
    params = jax.device_put(params, jax.tree.map(lambda a: a.sharding, abstract_state.params))
    return checkpoints.replace_params(init_fn(), params), None, f"params imported from {fmt} checkpoint {initial_path}"


def _default_optimizer(schedule):
    from flan_trainer.optimizers import adafactor

    return adafactor(learning_rate=schedule)


def _abstract_state(model, optimizer, rng, input_shapes, mesh, rules):
    """Shapes, dtypes and shardings of the train state without allocating it."""
    # params_shardings already maps the logical axes through `rules` and fits them to the shapes:
    # its second result is MESH specs (mapping them through the rules again replicated everything).
    abstract_params, mesh_specs, _ = partitioning.params_shardings(
        lambda r: model.get_initial_variables(r, input_shapes), rng, mesh, rules)
    with partitioning.axis_rules(rules):
        abstract = jax.eval_shape(lambda p: train_state_lib.TrainState.create(p, optimizer), abstract_params)
    shardings = train_state_lib.specs_to_shardings(
        train_state_lib.state_partition_specs(abstract, mesh_specs), mesh)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
    return abstract, shardings


def _loop(state, step_fn, train_iter, ckpt, reporter, watcher, ctx, start_step, train_steps,
          dropout_base, eval_period, eval_hooks, source) -> TrainResult:
    losses: dict[int, float] = {}
    last_good = ckpt.latest_step()
    stopped_by = "completed"
    step = start_step
    while step < train_steps:
        batch = next(train_iter)
        rng = jax.random.fold_in(dropout_base, step)
        new_state, metrics = step_fn(state, batch, rng)
        metrics = jax.device_get(metrics)
        loss = float(metrics["loss"])
        check_finite_loss(step + 1, loss, last_good)
        state, step = new_state, step + 1
        losses[step] = loss
        reporter.add(step, metrics, target_slots=batch["decoder_target_tokens"].size)
        preempted = watcher.should_stop(step)
        if ckpt.save(step, state, train_iter.data_state(), force=preempted or step == train_steps,
                     data_iterator=train_iter):
            last_good = step
        if eval_hooks and (step % eval_period == 0 or step == train_steps):
            _run_hooks(eval_hooks, ctx, step, state.params, final=step == train_steps)
        if preempted:
            stopped_by = "preempted"
            log.warning("preempted: checkpoint saved at step %d; exiting cleanly", step)
            break
    reporter.flush(step)
    return TrainResult(start_step, step, losses, source, stopped_by, dict(reporter.last_scalars))


def _run_hooks(hooks: Sequence[EvalHook], ctx: TrainContext, step: int, params: Any, final: bool) -> None:
    for hook in hooks:
        scalars = hook(ctx, step, params, final)
        if scalars:
            ctx.reporter.write_scalars(step, scalars)
