"""Command line for training: `python -m flan_trainer --gin_file=runs/quickstart.gin [--gin.X=Y ...]`.

Flags (T5X conventions):
  --gin_file=F         gin file, repeatable, later files win (searched in ./, gin/, --gin_search_paths)
  --gin.MACRO=VALUE    a gin binding, e.g. --gin.HELD_OUT_CLUSTER="'nli'" --gin.TRAIN_STEPS=2000
  --gin_search_paths   comma-separated extra folders to look for gin files in
  --tfds_data_dir      where prepared TFDS datasets live (the flan suite)
  --seqio_cache_dirs   comma-separated offline caches (`python -m flan_tasks cache`); read them with
                       --gin.USE_CACHED_TASKS=True
  --dry_run            print the resolved config, parameter count, each parameter's sharding and the
                       compiled step's memory footprint and compile seconds, then exit without training
  --compilation_cache_dir=DIR
                       persistent XLA compilation cache (default: gin compile_cache.enable.cache_dir,
                       else $JAX_COMPILATION_CACHE_DIR, else ~/.cache/flan_jax/jax_compilation_cache);
                       'none' turns it off. A re-run of the same config loads its train step from it.
Exit status: 0 done; 1 stopped by an error (a NaN loss, or an unexpected one); 2 configuration
(gin syntax, unknown binding); 3 checkpoint (damaged, not matching the model, missing); 4 file
system (MODEL_DIR not writable, disk full); 5 multi-host (a host never arrived, or one was lost).
Failures end with one line 'error: <cause>. Fix: ...'.
A damaged latest checkpoint stops the run unless --gin.RESTORE_FALLBACK=True, which resumes from
the newest checkpoint that restores cleanly (the damaged one is moved aside, never deleted).
Multi-host (flan_trainer/distributed.py): TPU pods and SLURM jobs are detected; otherwise pass
  --coordinator_address=HOST:PORT --num_processes=N --process_id=I (or the JAX_COORDINATOR_ADDRESS,
  JAX_NUM_PROCESSES, JAX_PROCESS_ID variables; launch/ sets them). A host that does not arrive
  fails the others after --initialization_timeout_s; a host lost mid-run stops the others after
  --heartbeat_timeout_s, naming it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence


def _parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    from flan_trainer.gin_utils import split_gin_overrides

    bindings, rest = split_gin_overrides(argv)
    parser = argparse.ArgumentParser(prog="python -m flan_trainer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_search_paths", default="", help="comma-separated folders")
    parser.add_argument("--tfds_data_dir", default=None)
    parser.add_argument("--seqio_cache_dirs", default="", help="comma-separated offline cache folders")
    parser.add_argument("--dry_run", action="store_true")
    parser.add_argument("--compilation_cache_dir", default=None)
    parser.add_argument("--log_level", default="INFO")
    parser.add_argument("--coordinator_address", default=None, help="HOST:PORT of process 0")
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    parser.add_argument("--initialization_timeout_s", type=int, default=None,
                        help="how long to wait for every host to join (default 300)")
    parser.add_argument("--heartbeat_timeout_s", type=int, default=None,
                        help="a host silent this long is declared lost (default 100)")
    return parser.parse_args(rest), bindings


def _join_job(args: argparse.Namespace):
    """Joins a multi-process job when flags or the environment describe one (flan_trainer.distributed)."""
    from flan_trainer import distributed

    timeouts = {k: v for k, v in (("initialization_timeout_s", args.initialization_timeout_s),
                                  ("heartbeat_timeout_s", args.heartbeat_timeout_s)) if v is not None}
    spec = distributed.detect({"coordinator_address": args.coordinator_address,
                               "num_processes": args.num_processes, "process_id": args.process_id}, **timeouts)
    distributed.initialize(spec)
    return spec


def _run(args: argparse.Namespace, bindings: list[str]):
    from flan_trainer import cli_errors, compile_cache, distributed, gin_utils
    from flan_trainer.train import train

    try:
        gin_utils.parse_gin(args.gin_file, bindings, [p for p in args.gin_search_paths.split(",") if p])
    except (SyntaxError, ValueError, FileNotFoundError) as e:
        raise cli_errors.GinConfigError(cli_errors.describe_gin_error(e)) from e
    for line in gin_utils.launch_labels():
        logging.getLogger("flan_trainer").info("launched by %s", line)
    cache = compile_cache.enable(args.compilation_cache_dir)  # before anything is compiled
    spec = _join_job(args)
    with distributed.exit_on_lost_peer(spec, report=lambda exc: _report_failure(exc, args.log_level)):
        result = train(dry_run=args.dry_run)
    if cache is not None:
        logging.getLogger("flan_trainer").info(cache.summary())
    return result


def _report_failure(exc: Exception, log_level: str) -> int:
    from flan_trainer import cli_errors

    status, message = cli_errors.explain(exc)
    if message is None or str(log_level).upper() == "DEBUG":
        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {message or cli_errors.unexpected(exc)}", file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args, bindings = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "jax._src", "orbax", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # gin logs an error for every search path a relative include is not found in before it finds
    # the file in the next one; those are not errors for us.
    logging.getLogger().addFilter(lambda record: not record.getMessage().startswith("Path not found"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.tfds_data_dir:
        import seqio

        seqio.set_tfds_data_dir_override(args.tfds_data_dir)
    if args.seqio_cache_dirs:
        import seqio

        seqio.add_global_cache_dirs([d for d in args.seqio_cache_dirs.split(",") if d])
    if not args.gin_file:
        print("error: give at least one --gin_file (e.g. --gin_file=runs/quickstart.gin)", file=sys.stderr)
        return 2
    try:
        result = _run(args, bindings)
    except Exception as exc:  # noqa: BLE001 - every failure ends in one readable line and a status
        return _report_failure(exc, args.log_level)
    if result is not None:
        logging.getLogger("flan_trainer").info(
            "finished at step %d (%s); started at %d (%s)", result.final_step, result.stopped_by,
            result.start_step, result.restored_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())
