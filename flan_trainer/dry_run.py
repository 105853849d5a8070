"""`--dry_run`: show what a run would do (config, mixture, parameters, shardings, memory, compile
seconds) without training.

Everything here works from abstract shapes: the model is never allocated, and the train step is
compiled ahead of time, so an out-of-memory configuration shows up on a CPU host before a pod job.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import gin
import jax
import numpy as np

from flan_trainer import partitioning


def _path_name(path: tuple) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def parameter_table(abstract_params: Any, param_shardings: Any) -> tuple[list[tuple[str, str, str, str]], int]:
    """Rows (name, shape, dtype, partition spec) for every parameter, and the total count."""
    rows, total = [], 0
    flat_p = jax.tree_util.tree_flatten_with_path(abstract_params)[0]
    flat_s = jax.tree.leaves(param_shardings)
    for (path, leaf), sharding in zip(flat_p, flat_s, strict=True):
        total += int(np.prod(leaf.shape))
        rows.append((_path_name(path), str(tuple(leaf.shape)), str(leaf.dtype), str(sharding.spec)))
    return rows, total


def _abstract_batch(model: Any, task_feature_lengths: Mapping[str, int], batch_size: int, mesh) -> dict:
    converter = model.feature_converter_cls(pack=True)
    lengths = converter.get_model_feature_lengths(dict(task_feature_lengths))
    sharding = partitioning.batch_sharding(mesh)
    return {k: jax.ShapeDtypeStruct((batch_size, v), np.int32, sharding=sharding) for k, v in lengths.items()}


def compile_step(step_fn: Any, abstract_state: Any, abstract_batch: dict) -> tuple[Any, dict[str, float]]:
    """Compiles the train step ahead of time; returns it and the seconds spent lowering and compiling.

    With the persistent compilation cache on (``flan_trainer.compile_cache``) a warm cache makes
    ``compile_s`` the time to load the executable, not to build it.
    """
    rng = jax.ShapeDtypeStruct((2,), np.uint32)
    t0 = time.perf_counter()
    lowered = step_fn.lower(abstract_state, abstract_batch, rng)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    return compiled, {"lower_s": t1 - t0, "compile_s": time.perf_counter() - t1}


def compiled_memory(compiled: Any) -> dict[str, float] | None:
    """Per-device bytes of a compiled step (arguments, outputs, temporaries), if XLA reports it."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return None
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
              "generated_code_size_in_bytes", "alias_size_in_bytes")
    return {f: float(getattr(analysis, f, 0.0)) for f in fields}


def describe_run(model, abstract_state, shardings, step_fn, mesh, mixture, task_feature_lengths,
                 batch_size) -> dict:
    """Prints the resolved run and returns the same facts as a dict (for tests and tooling)."""
    print("=== resolved gin config ===")
    print(gin.config_str())
    print(f"=== mixture: {mixture} ===")
    try:
        import flan_tasks

        for row in flan_tasks.mixture_manifest(mixture):
            print(f"  {row}")
    except (ValueError, KeyError) as e:  # a plain task has no manifest
        print(f"  (no manifest: {e})")
    print(f"=== mesh: {dict(mesh.shape)} ===")
    rows, total = parameter_table(abstract_state.params, shardings.params)
    width = max(len(r[0]) for r in rows)
    for name, shape, dtype, spec in rows:
        print(f"  {name:<{width}}  {shape:<18} {dtype:<8} {spec}")
    print(f"=== parameters: {total:,} ({total * 4 / 2**20:.1f} MiB in float32) ===")
    compiled, seconds = compile_step(step_fn, abstract_state,
                                     _abstract_batch(model, task_feature_lengths, batch_size, mesh))
    memory = compiled_memory(compiled)
    print("=== compiled train step, per device ===")
    for key, value in (memory or {}).items():
        print(f"  {key:<32} {value / 2**20:10.1f} MiB")
    print(f"  {'lower_seconds':<32} {seconds['lower_s']:10.2f} s")
    print(f"  {'compile_seconds':<32} {seconds['compile_s']:10.2f} s")
    return {"num_params": total, "memory": memory, "mesh": dict(mesh.shape), "mixture": mixture, **seconds}
