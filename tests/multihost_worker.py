"""One process of the two-process CPU job launched by tests/test_multihost.py.

Usage: multihost_worker.py PROCESS_ID PORT MODEL_DIR OUT_JSON
Reads its data shard through flan_trainer.input_pipeline, trains a sharded linear model with optax
SGD, saves and restores an Orbax checkpoint (onto another sharding), and writes what it saw as JSON.
"""

import json
import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import seqio  # noqa: E402
import tensorflow as tf  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from flan_trainer import checkpoints as ck  # noqa: E402
from flan_trainer import input_pipeline as ip  # noqa: E402

VOCAB = seqio.ByteVocabulary()
LENGTHS = {"inputs": 16, "targets": 4}
TASK = "multihost_tiny_task"


def _examples(split, shuffle_files, seed=None):
    ids = tf.range(64)
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.strings.join(["ex ", tf.strings.as_string(ids)]),
        "targets": tf.strings.as_string(ids % 5),
    })


def _register() -> None:
    seqio.TaskRegistry.add(
        TASK, source=seqio.FunctionDataSource(_examples, splits=("train",)),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features={k: seqio.Feature(VOCAB, add_eos=True) for k in ("inputs", "targets")})


def _local_texts(batch) -> list[str]:
    arr = batch["encoder_input_tokens"]
    rows = {}
    for shard in arr.addressable_shards:  # rows this host put in, by global row index
        start = shard.index[0].start or 0
        for i, row in enumerate(np.asarray(shard.data)):
            rows[start + i] = VOCAB.decode([int(t) for t in row if t > 1])
    return [rows[k] for k in sorted(rows)]


def _loss(w, batch):
    x = batch["encoder_input_tokens"].astype(jnp.float32) / 255.0
    y = batch["decoder_target_tokens"].astype(jnp.float32).sum(-1, keepdims=True) / 255.0
    return jnp.mean((x @ w - y) ** 2)


def main() -> None:
    pid, port, model_dir, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    # CPU cross-process collectives need gloo.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid,
                               initialization_timeout=60, heartbeat_timeout_seconds=30)
    assert jax.device_count() == 4 and jax.local_device_count() == 2
    _register()
    mesh = Mesh(np.array(jax.devices()).reshape(4, 1), ("data", "model"))
    make = lambda **kw: ip.get_train_iterator(  # noqa: E731
        TASK, LENGTHS, 8, seqio.EncDecFeatureConverter, mesh, seed=5, shuffle=False, pack=False, **kw)
    it = make()
    tx = optax.sgd(0.5)
    w = jax.device_put(jnp.zeros((16, 1)), NamedSharding(mesh, P("data", None)))  # rows split 4 ways
    state = {"params": {"w": w}, "opt_state": tx.init({"w": w}), "step": jnp.asarray(0)}

    @jax.jit
    def train_step(state, batch):
        loss, grads = jax.value_and_grad(lambda p: _loss(p["w"], batch))(state["params"])
        updates, opt = tx.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt,
                "step": state["step"] + 1}, loss

    losses, first_texts = [], None
    for _ in range(3):
        batch = next(it)
        first_texts = first_texts or _local_texts(batch)
        state, loss = train_step(state, batch)
        losses.append(float(loss))
    position = it.data_state()  # 3 batches consumed; peek at the 4th for the resume check
    next_batch_texts = _local_texts(next(it))

    with ck.CheckpointManager(model_dir, keep=2, period=1) as mgr:
        assert mgr.save(3, state, position)
    trained = multihost_utils.process_allgather(state["params"]["w"], tiled=True)

    # Restore onto a different sharding of the same mesh (replicated).
    target = ck.abstract_like(state)
    target["params"]["w"] = jax.ShapeDtypeStruct((16, 1), jnp.float32, sharding=NamedSharding(mesh, P()))
    with ck.CheckpointManager(model_dir, keep=2, period=1) as mgr:
        restored, data_state = mgr.restore(None, target)
    w_restored = restored["params"]["w"]
    resumed_texts = _local_texts(next(make(start_step=data_state["steps"])))
    json.dump({
        "process": pid,
        "shard": [it.shard_info.index, it.shard_info.num_shards],
        "first_batch": first_texts,
        "losses": losses,
        "trained_w": trained.ravel().tolist(),
        "restored_w": np.asarray(w_restored.addressable_data(0)).ravel().tolist(),
        "restored_replicated": w_restored.sharding.spec == P() and w_restored.is_fully_replicated,
        "restored_step": int(restored["step"]),
        "data_state": data_state,
        "next_batch": next_batch_texts,
        "resumed_batch": resumed_texts,
    }, open(out_path, "w"))
    multihost_utils.sync_global_devices("done")
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
