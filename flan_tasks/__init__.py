"""FLAN instruction-tuning tasks and mixtures as seqio registrations.

Importing this package is cheap and side-effect free: nothing is registered and no dataset is
built until one of the `register_*` functions is called. It never imports jax, flax or optax.

Public API (all names are importable from `flan_tasks`; modules load lazily on first use)::

    # registration (idempotent; each returns the list of seqio names it registered)
    register_embedded_suite(vocabulary=None, seed=0, options=None) -> list[str]
    register_flan_collection(vocabulary=None, options=None) -> list[str]
        # delegates to flan_tasks.flan.register_flan_collection (the TFDS catalog)
    register_suite(suite: str, specs: Sequence[DatasetSpec], *, vocabulary=None,
                   cluster_rules: ClusterRules | None = None, seed: int = 0,
                   options: RegistrationOptions | None = None) -> list[str]
        # the suite-agnostic core: DatasetSpecs -> train tasks, per-template eval tasks and
        # the {suite}_all_train / {suite}_held_out_{cluster}_train|_eval mixtures.
    RegistrationOptions(example_cap=30000, rate_cap=3000, template_seed=0,
                        include_options=True, flan_wrapper=False,
                        classification_generation=False)
    registered_specs(suite) -> tuple[DatasetSpec, ...]; task_info(task_name) -> TaskInfo

    # clusters and the held-out protocol
    ClusterRules(clusters: tuple[str, ...], overlaps: Mapping[str, tuple[str, ...]])
    FLAN_CLUSTERS, EMBEDDED_CLUSTERS          # cluster names of the two built-in suites
    clusters(suite) -> tuple[str, ...]
    held_out_training_clusters(suite, cluster) -> tuple[str, ...]
    UnknownClusterError(ValueError); LeakError(RuntimeError)
    check_no_leak(mixture_name, held_out_cluster=None) -> None

    # rendering
    options_block(options: Sequence[str]) -> str       # "OPTIONS:\\n- a\\n- b"
    options_block_tf(options: tf.Tensor) -> tf.Tensor

    # few-shot variants (opt-in; on top of a registered suite; see flan_tasks.few_shot)
    register_few_shot(suite, num_shots=16, token_budget=960, seed=0, *, pool_size=512,
                      example_separator="\n\n", target_separator="\n") -> list[str]
        # {suite}_{dataset}_t{k}_{val|test}_{rank|gen}_{n}shot tasks and
        # {suite}_held_out_{cluster}_eval_{n}shot mixtures: up to n exemplars (seeded draw from the
        # first pool_size training records, rendered with the same template, inputs + target)
        # before the zero-shot prompt, oldest dropped first until the tokenized inputs (EOS
        # included) fit token_budget; the prompt is never cut. Eval-only datasets get none.
    FewShotConfig; registered_few_shot(suite) -> tuple[int, ...]
    few_shot_task_name(suite, dataset, k, split, kind, num_shots) -> str
    few_shot_eval_mixture_name(suite, cluster, num_shots) -> str

    # evaluation plan, manifests, validation
    EvalEntry; eval_plan(suite, cluster, few_shot=None) -> list[EvalEntry]
    mixture_manifest(mixture_name) -> list[ManifestRow]
    validate_spec(spec) -> None; validate_specs(specs) -> None   # raise TemplateError

    DatasetSpec.options: fixed option strings in order (eval_plan reports them; validation
        checks the processor agrees); leave () when options vary per example.
    DEFAULT_SPM_PATH   # the T5 cc_all.32000 SentencePiece model used by the flan suite

Cluster names of the flan suite (flan_tasks.clustering.FLAN_CLUSTERS): nli, reading_comprehension,
closed_book_qa, commonsense, sentiment, paraphrase, coreference,
reading_comprehension_with_commonsense, translation, summarization, struct_to_text, misc.

Eval tasks: every eval task reads its own slice (validation slice for `_val_` tasks, reported
split for `_test_` tasks) under both seqio split names "validation" and "test", so callers may
ask for either.
"""

from __future__ import annotations

import importlib
from typing import Any

DEFAULT_SPM_PATH = "gs://t5-data/vocabs/cc_all.32000/sentencepiece.model"

# Public name -> module that defines it; resolved on first attribute access so that
# `import flan_tasks` stays cheap.
_LAZY = {
    "register_embedded_suite": "flan_tasks.embedded",
    "register_suite": "flan_tasks.registry",
    "RegistrationOptions": "flan_tasks.registry",
    "registered_specs": "flan_tasks.registry",
    "task_info": "flan_tasks.registry",
    "TaskInfo": "flan_tasks.registry",
    "ClusterRules": "flan_tasks.clustering",
    "FLAN_CLUSTERS": "flan_tasks.clustering",
    "EMBEDDED_CLUSTERS": "flan_tasks.clustering",
    "clusters": "flan_tasks.clustering",
    "held_out_training_clusters": "flan_tasks.clustering",
    "UnknownClusterError": "flan_tasks.clustering",
    "LeakError": "flan_tasks.clustering",
    "check_no_leak": "flan_tasks.clustering",
    "options_block": "flan_tasks.options",
    "options_block_tf": "flan_tasks.options",
    "register_few_shot": "flan_tasks.few_shot",
    "FewShotConfig": "flan_tasks.few_shot",
    "few_shot_task_name": "flan_tasks.few_shot",
    "few_shot_eval_mixture_name": "flan_tasks.few_shot",
    "registered_few_shot": "flan_tasks.few_shot",
    "EvalEntry": "flan_tasks.eval_plan",
    "eval_plan": "flan_tasks.eval_plan",
    "mixture_manifest": "flan_tasks.manifest",
    "ManifestRow": "flan_tasks.manifest",
    "validate_spec": "flan_tasks.validation",
    "validate_specs": "flan_tasks.validation",
    "TemplateError": "flan_tasks.validation",
    "Template": "flan_tasks.spec",
    "Splits": "flan_tasks.spec",
    "DatasetSpec": "flan_tasks.spec",
}

__all__ = sorted([*_LAZY, "DEFAULT_SPM_PATH", "register_flan_collection"])


def register_flan_collection(vocabulary: Any = None, options: Any = None) -> list[str]:
    """Register the FLAN 2021 TFDS catalog (see flan_tasks.flan); idempotent."""
    flan = importlib.import_module("flan_tasks.flan")
    return flan.register_flan_collection(vocabulary=vocabulary, options=options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flan_tasks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
