"""`python -m evals`: evaluate a checkpoint on one cluster.

    python -m evals --checkpoint MODEL_DIR_OR_checkpoint_N --cluster nli \\
        [--suite flan|embedded] [--gin_file models/t5_1_1_small.gin ...] [--gin.X=Y ...] \\
        [--output_dir DIR] [--batch_size 32] [--max_examples N] [--split both|validation|reported]

The model comes from gin, as in T5X: the gin files define the macro `MODEL`. Only the parameters
are read from the checkpoint, straight into their training shardings on a ('data', 'model') mesh
over all devices (--num_partitions sets the 'model' axis); eval batches are sharded over 'data'.
Several processes: start one per host with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID set (as for training); every host evaluates its rows and process 0 writes the report. The held-in/held-out status is taken from the training mixture
saved with the checkpoint's data position, unless --training_mixture says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import gin


@gin.configurable("evals_model")
def _model_from_gin(model: Any = gin.REQUIRED) -> Any:
    return model


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    from flan_trainer import gin_utils

    bindings, rest = gin_utils.split_gin_overrides(argv)
    p = argparse.ArgumentParser(prog="python -m evals", description="Evaluate a checkpoint on a cluster.")
    p.add_argument("--checkpoint", required=True, help="checkpoint_<step> directory or a model dir (latest)")
    p.add_argument("--cluster", required=True)
    p.add_argument("--suite", default="flan", choices=("flan", "embedded"))
    p.add_argument("--gin_file", action="append", default=[], help="repeatable; later wins")
    p.add_argument("--gin_search_paths", default="", help="comma-separated")
    p.add_argument("--output_dir", default=None, help="default: <checkpoint>/eval_<suite>_<cluster>")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_examples", type=int, default=None)
    p.add_argument("--split", default="both", choices=("both", "validation", "reported"))
    p.add_argument("--method", default="greedy", choices=("greedy", "beam"))
    p.add_argument("--training_mixture", default=None)
    p.add_argument("--few_shot", type=int, default=0, help="N exemplars before each prompt (0: zero-shot)")
    p.add_argument("--num_partitions", type=int, default=1, help="model-parallel ways (the mesh's 'model' axis)")
    return p.parse_args(rest), bindings


def check_cluster(suite: str, cluster: str) -> None:
    """Raises flan_tasks.UnknownClusterError (listing valid names) before any heavy work."""
    import flan_tasks

    flan_tasks.held_out_training_clusters(suite, cluster)


def load_model_and_params(checkpoint: str, gin_files: Sequence[str], bindings: Sequence[str],
                          search_paths: Sequence[str], mesh: Any = None) -> tuple[Any, Any, str, int | None]:
    """(model from gin's MODEL, params from the checkpoint, checkpoint dir, training mixture).

    With `mesh` (an evals.eval_mesh.EvalMesh) the parameters are restored in their training
    shardings on it, each host reading only its shards.
    """
    import flax.linen as nn
    import jax

    from flan_trainer import checkpoints, gin_utils

    gin_utils.parse_gin(gin_files, [*bindings, "evals_model.model = %MODEL"], search_paths)
    try:
        model = _model_from_gin()
    except (ValueError, KeyError) as e:
        raise SystemExit(f"the gin files must define the macro MODEL (as T5X model gin files do): {e}") from e
    ckpt_dir = checkpoints.resolve_checkpoint_dir(checkpoint)
    shapes = {"decoder_input_tokens": (1, 16), "decoder_target_tokens": (1, 16)}
    if not getattr(model.config, "decoder_only", False):
        shapes["encoder_input_tokens"] = (1, 16)
    # get_initial_variables boxes params with logical axis names; checkpoints hold plain arrays.
    abstract = nn.meta.unbox(
        jax.eval_shape(lambda: model.get_initial_variables(jax.random.PRNGKey(0), shapes))["params"]
    )
    if mesh is not None:
        abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                abstract, mesh.param_shardings(model))
    params = checkpoints.restore_params_only(ckpt_dir, abstract)
    data_state = checkpoints.read_data_state(ckpt_dir) or {}
    return model, params, str(ckpt_dir), data_state.get("mixture")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
    import flan_tasks
    from evals import runner

    try:
        check_cluster(args.suite, args.cluster)
    except flan_tasks.UnknownClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    search = [s for s in args.gin_search_paths.split(",") if s]
    from evals import eval_mesh
    from flan_trainer import distributed, partitioning
    from flan_trainer.tasks_setup import build_vocabulary

    try:  # the same job discovery as training (env, SLURM, TPU pod); a no-op for one process
        distributed.initialize(distributed.detect())
    except distributed.DistributedStartupError as e:
        print(f"error: {e}", file=sys.stderr)
        return distributed.EXIT_MULTIHOST
    try:
        mesh = eval_mesh.EvalMesh(partitioning.make_mesh(num_partitions=args.num_partitions))
    except partitioning.PartitioningError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model, params, ckpt_dir, mixture = load_model_and_params(args.checkpoint, args.gin_file, bindings, search, mesh)
    output_dir = args.output_dir or str(pathlib.Path(ckpt_dir) / f"eval_{args.suite}_{args.cluster}")
    results = runner.evaluate(
        model, params, args.suite, args.cluster, vocabulary=build_vocabulary(), batch_size=args.batch_size,
        output_dir=output_dir, few_shot=args.few_shot,
        max_examples=args.max_examples, split=args.split, method=args.method,
        training_mixture=args.training_mixture or mixture, run_info={"checkpoint": ckpt_dir}, mesh=mesh,
    )
    if eval_mesh.is_main_process():
        print(runner.summary_line(results))
        print(f"wrote {output_dir}/results.json and summary.md "
              f"({results['run']['compiled_programs']} programs compiled)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
