"""One process of the CPU jobs launched by tests/test_multihost.py, on the trainer's real pieces.

Usage:
  multihost_worker.py multi PROCESS_ID PORT MODEL_DIR OUT_JSON   # one of two jax.distributed processes
  multihost_worker.py single OUT_JSON                            # the same run in one 4-device process

Each process has 2 CPU devices (4 in ``single``); the mesh is (data=2, model=2) over all 4, so the
gradient reduction crosses processes. The worker trains the real T5.1.1 encoder-decoder
(``EncoderDecoderModel``, tiny fp32 config) with the trainer's Adafactor and ``make_train_step`` on
the embedded ``held_out_nli`` mixture through ``input_pipeline.get_train_iterator`` (packed,
shuffled), saves an Orbax checkpoint with the data position (and each host its iterator state) into a
shared MODEL_DIR, restores it onto the same shardings, restores the iterator state and takes one more
step from the restored state. The
``single`` run reads both data shards itself and assembles the same global batches, as a reference.
It writes what it saw as JSON.

Evaluation phase (``_eval_phase``, issue 11): before training, the initial parameters are scored
on the embedded nli cluster through evals (rank classification per example, greedy decoding of the
same prompts, and ``runner.evaluate`` writing a report) on the (2, 2) mesh across both processes;
the ``single`` run does the same on ONE device as the reference. After training, the in-loop hook
``evals.train_hook.HeldOutEval`` runs on the trained, sharded parameters on both hosts.
"""

import functools
import hashlib
import json
import os
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={4 if MODE == 'single' else 2}"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gin  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import seqio  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from flan_trainer import checkpoints, input_pipeline, partitioning, tasks_setup  # noqa: E402
from flan_trainer.models.config import TransformerConfig  # noqa: E402
from flan_trainer.models.model_api import EncoderDecoderModel  # noqa: E402
from flan_trainer.optimizers import adafactor  # noqa: E402
from flan_trainer.train_state import init_sharded_state  # noqa: E402
from flan_trainer.train_step import make_train_step  # noqa: E402

MIXTURE = "embedded_held_out_nli_train"
LENGTHS = {"inputs": 64, "targets": 16}
BATCH, SEED, STEPS, MESH_SHAPE = 8, 7, 3, (2, 2)
CONFIG = TransformerConfig(vocab_size=384, emb_dim=32, num_heads=2, num_encoder_layers=1,
                           num_decoder_layers=1, head_dim=16, mlp_dim=64, dtype="float32")


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _local_rows(batch) -> dict[str, np.ndarray]:
    """This host's rows of every feature, in global row order (model-axis copies counted once)."""
    out = {}
    for name, arr in sorted(batch.items()):
        rows = {}
        for shard in arr.addressable_shards:
            start = shard.index[0].start or 0
            for i, row in enumerate(np.asarray(shard.data)):
                rows[start + i] = row
        out[name] = np.stack([rows[k] for k in sorted(rows)])
    return out


@functools.cache
def _replicator(mesh):
    return jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, P()))


def _gather(tree, mesh):
    """Full numpy copies of a tree of global arrays on ``mesh`` (one collective for the tree)."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), _replicator(mesh)(tree))


def _global_digest(tree, mesh) -> str:
    """Digest of every leaf of a tree of global arrays, gathered from all processes."""
    return _digest(jax.tree.leaves(_gather(tree, mesh)))


def _setup():
    # A small shuffle buffer, as tests/data/tiny_train.gin: faster to fill and to save. A gin binding,
    # so that the evals' own registration of the suite (same binding) keeps the same tasks.
    gin.bind_parameter("register_suite.shuffle_buffer_size", 64)
    tasks_setup.register_suite("embedded")
    model = EncoderDecoderModel(CONFIG)
    mesh = partitioning.make_mesh(mesh_shape=MESH_SHAPE)
    rules = partitioning.standard_logical_axis_rules()
    optimizer = adafactor(learning_rate=1e-2)
    lengths = model.feature_converter_cls(pack=False).get_model_feature_lengths(LENGTHS)
    shapes = {k: (1, v) for k, v in lengths.items()}
    state, shardings = init_sharded_state(model, optimizer, jax.random.PRNGKey(SEED), shapes, mesh, rules)
    step_fn = make_train_step(model, optimizer, mesh, shardings, rules)
    return model, optimizer, rules, mesh, state, shardings, step_fn


def _model_across_processes_mesh():
    """A (2, 2) mesh whose 'model' axis spans both processes (each process holds one column)."""
    devs = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return partitioning.make_mesh(mesh_shape=MESH_SHAPE, devices=[devs[0], devs[2], devs[1], devs[3]])


def _train(step_fn, state, batches, start=0):
    losses, grad_norms = [], []
    for i, batch in enumerate(batches):
        state, metrics = step_fn(state, batch, jax.random.fold_in(jax.random.PRNGKey(SEED), start + i))
        metrics = jax.device_get(metrics)
        losses.append(float(metrics["loss"]))
        grad_norms.append(float(metrics["grad_norm"]))
    return state, losses, grad_norms


def _leaves_equal(a, b) -> bool:
    """Same sharding and bit-identical local shards, leaf by leaf."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if x.sharding != y.sharding or x.shape != y.shape or x.dtype != y.dtype:
            return False
        for sx, sy in zip(x.addressable_shards, y.addressable_shards, strict=True):
            if sx.index != sy.index or not np.array_equal(np.asarray(sx.data), np.asarray(sy.data)):
                return False
    return True


EVAL_TASK = "embedded_fact_nli_t0_test_rank"


def _eval_phase(model, params, mesh, rules, report_dir):
    """Per-example rank scores, decoded tokens and report scalars of `params` on `mesh`.

    Every process calls this with the same arguments; each feeds only its rows of every eval batch.
    """
    from evals import eval_mesh, generation, rank_classification, runner, train_hook

    ev = eval_mesh.resolve(mesh, rules)
    examples = rank_classification.load_rank_task(EVAL_TASK, "test", max_examples=6)
    ranked = rank_classification.rank_examples(model, params, examples, 4, mesh=ev)
    prompts = [generation.GenExample(e.example_index, e.inputs, ("",), 4) for e in examples]
    tokens = generation.decode_examples(model, params, prompts, 4, max_decode_length=4, mesh=ev)
    res = runner.evaluate(model, params, "embedded", "nli", batch_size=4, output_dir=report_dir, max_examples=4,
                          split="reported", max_templates=1, plots=False, mesh=ev,
                          training_mixture=MIXTURE)
    return {"scores": [s.tolist() for s in ranked.scores], "predictions": ranked.predictions,
            "tokens": [t.tolist() for t in tokens], "report_scalars": train_hook._scalars(res),
            "compiled_programs": res["run"]["compiled_programs"], "eval_mesh_shape": res["run"]["mesh_shape"]}


def _in_loop_eval(model, mesh, rules, model_dir, params, step):
    """The training loop's held-out evaluation hook on the trained (sharded) parameters."""
    from evals.train_hook import HeldOutEval
    from flan_trainer.tasks_setup import build_vocabulary
    from flan_trainer.train import TrainContext

    ctx = TrainContext(model, mesh, rules, model_dir, build_vocabulary(), "embedded", "nli", MIXTURE)
    hook = HeldOutEval(batch_size=4, periodic_max_examples=4, periodic_max_templates=1)
    return hook(ctx, step, params, final=False)


def run_multi(pid: int, port: int, model_dir: str, out_path: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU cross-process collectives
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid,
                               initialization_timeout=60, heartbeat_timeout_seconds=30)
    assert jax.device_count() == 4 and jax.local_device_count() == 2
    t0 = time.perf_counter()
    model, optimizer, rules, mesh, state, shardings, step_fn = _setup()
    t_eval0 = time.perf_counter()
    evaluated = _eval_phase(model, state.params, mesh, rules, os.path.join(model_dir, f"eval_report_p{pid}"))
    t0 += time.perf_counter() - t_eval0  # reported separately below
    seconds_eval = time.perf_counter() - t_eval0
    make = lambda start=0, resume_dir=None: input_pipeline.get_train_iterator(  # noqa: E731
        MIXTURE, LENGTHS, BATCH, model.feature_converter_cls, mesh, SEED, start_step=start, resume_dir=resume_dir)
    it = make()
    batches = [next(it) for _ in range(STEPS)]
    local = [_local_rows(b) for b in batches]
    # Every host's digest of its own rows, exchanged through a cross-process gather.
    local_digests = multihost_utils.process_allgather(
        np.array([int(_digest(rows.values()), 16) % 2**31 for rows in local], np.int32))
    t_batches = time.perf_counter()
    global_digests = [_global_digest(b, mesh) for b in batches]
    init_digest = _global_digest(state, mesh)
    t_data = time.perf_counter()
    state, losses, grad_norms = _train(step_fn, state, batches)
    t_train = time.perf_counter()
    position = it.data_state()
    with checkpoints.CheckpointManager(model_dir, keep=2, period=1) as mgr:
        # Every host saves its own input iterator state beside the shared train state.
        assert mgr.save(STEPS, state, position, data_iterator=it)
    next_local = _local_rows(batch_next := next(it))
    target = checkpoints.abstract_like(state)
    with checkpoints.CheckpointManager(model_dir, keep=2, period=1) as mgr:
        restored, data_state = mgr.restore(None, target)
    restored_equal, restored_step = _leaves_equal(restored, state), int(jax.device_get(restored.step))
    trained_digest = _global_digest(state, mesh)
    resumed = make(start=data_state["steps"], resume_dir=checkpoints.step_dir(model_dir, STEPS))
    resumed_batch = next(resumed)
    resumed_local = _local_rows(resumed_batch)
    # One more step, uninterrupted and from the restored state with the resumed batch.
    state, cont_loss, _ = _train(step_fn, state, [batch_next], start=STEPS)
    restored, resumed_loss, _ = _train(step_fn, restored, [resumed_batch], start=STEPS)
    t_resume = time.perf_counter()
    in_loop = _in_loop_eval(model, mesh, rules, model_dir, state.params, STEPS + 1)
    seconds_in_loop = time.perf_counter() - t_resume
    t_resume = time.perf_counter()

    # The same checkpoint restored onto a mesh whose 'model' axis crosses processes (heads, mlp and
    # vocab split between the hosts), then the resumed step there: model-parallel collectives go
    # over gloo too. Such hosts hold the same rows, so they read the same (single) data shard.
    mesh_b = _model_across_processes_mesh()
    shardings_b = jax.tree.map(lambda s: NamedSharding(mesh_b, s.spec), shardings)
    target_b = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), target, shardings_b)
    with checkpoints.CheckpointManager(model_dir, keep=2, period=1) as mgr:
        restored_b, _ = mgr.restore(STEPS, target_b)
    restored_b_digest = _global_digest(restored_b, mesh_b)
    restored_b_specs_ok = all(x.sharding == s for x, s in zip(
        jax.tree.leaves(restored_b), jax.tree.leaves(shardings_b), strict=True))
    full = _gather(resumed_batch, mesh)
    step_b = make_train_step(model, optimizer, mesh_b, shardings_b, rules)
    _, loss_b, _ = _train(step_b, restored_b, [partitioning.shard_batch(full, mesh_b)], start=STEPS)
    t_end = time.perf_counter()
    json.dump({
        "process": pid,
        "shard": [it.shard_info.index, it.shard_info.num_shards],
        "mesh_processes": [[d.process_index for d in row] for row in mesh.devices],
        "local_rows": int(next(iter(local[0].values())).shape[0]),
        "local_digests": local_digests.tolist(),
        "global_digests": global_digests,
        "init_digest": init_digest,
        "trained_digest": trained_digest,
        "losses": losses,
        "grad_norms": grad_norms,
        "restored_equal": restored_equal,
        "restored_step": restored_step,
        "data_state": data_state,
        "resumed_by": resumed.resumed_by,
        "resumed_batch_equal": next_local.keys() == resumed_local.keys()
        and all(np.array_equal(next_local[k], resumed_local[k]) for k in next_local),
        "continued_loss": cont_loss[0],
        "resumed_loss": resumed_loss[0],
        "continued_equals_resumed": _leaves_equal(state, restored),
        "mesh_b_processes": [[d.process_index for d in row] for row in mesh_b.devices],
        "mesh_b_shard": list(partitioning.data_shard_info(mesh_b)),
        "restored_b_digest": restored_b_digest,
        "restored_b_specs_ok": restored_b_specs_ok,
        "loss_b": loss_b[0],
        "eval": evaluated,
        "in_loop_scalars": in_loop,
        "seconds": {"eval": seconds_eval, "in_loop_eval": seconds_in_loop,"setup": t_batches - t0, "digests": t_data - t_batches, "train": t_train - t_data,
                    "checkpoint_resume": t_resume - t_train, "model_across_processes": t_end - t_resume},
    }, open(out_path, "w"))
    multihost_utils.sync_global_devices("done")
    jax.distributed.shutdown()


def run_single(out_path: str) -> None:
    """The same run in one process: it reads both host shards and assembles each global batch."""
    model, _, rules, mesh, state, _, step_fn = _setup()
    # The evaluation reference: the same eval on ONE device.
    one = partitioning.make_mesh(mesh_shape=(1, 1), devices=jax.devices()[:1])
    evaluated = _eval_phase(model, state.params, one, rules, None)
    shards = [input_pipeline.get_host_dataset(
        MIXTURE, LENGTHS, BATCH // 2, model.feature_converter_cls, seqio.ShardInfo(i, 2), SEED,
        shuffle=True, pack=True).as_numpy_iterator() for i in range(2)]
    batches = []
    for _ in range(STEPS):
        parts = [next(s) for s in shards]
        batches.append(partitioning.shard_batch(
            {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, mesh))
    init_digest = _global_digest(state, mesh)
    _, losses, grad_norms = _train(step_fn, state, batches)
    json.dump({"global_digests": [_global_digest(b, mesh) for b in batches], "init_digest": init_digest,
               "losses": losses, "grad_norms": grad_norms, "eval": evaluated}, open(out_path, "w"))


if __name__ == "__main__":
    if MODE == "multi":
        run_multi(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    elif MODE == "single":
        run_single(sys.argv[2])
    else:
        sys.exit(__doc__)
