"""Connects the trainer to flan_tasks: vocabulary, suite registration, held-out mixture names.

Everything here runs before any model is built, so a wrong cluster name or a leaky mixture fails
in seconds, not after compilation.
"""

from __future__ import annotations

import logging

import gin
import seqio

import flan_tasks

log = logging.getLogger(__name__)

SUITES = ("embedded", "flan")


@gin.configurable
def build_vocabulary(kind: str = "byte", spm_path: str | None = None, extra_ids: int = 100) -> seqio.Vocabulary:
    """The task vocabulary: 'byte' (no files needed) or 'sentencepiece' (spm_path required).

    Real runs name their SentencePiece model in gin (e.g. the T5 cc_all.32000 model with 100
    extra ids, as Flan-T5 uses); nothing is downloaded here.
    """
    if kind == "byte":
        return seqio.ByteVocabulary()
    if kind == "sentencepiece":
        if not spm_path:
            raise ValueError(
                "build_vocabulary.kind='sentencepiece' needs build_vocabulary.spm_path "
                "(e.g. --gin.VOCABULARY_PATH=\"'/path/to/cc_all.32000/sentencepiece.model'\")."
            )
        return seqio.SentencePieceVocabulary(spm_path, extra_ids=extra_ids)
    raise ValueError(f"unknown vocabulary kind {kind!r}; use 'byte' or 'sentencepiece'.")


@gin.configurable(allowlist=["shuffle_buffer_size"])
def register_suite(suite: str, vocabulary: seqio.Vocabulary | None = None, shuffle_buffer_size: int | None = None) -> None:
    """Registers the suite's tasks and mixtures with this vocabulary (None: the suite's default; idempotent).

    ``shuffle_buffer_size`` (gin: ``register_suite.shuffle_buffer_size``): each training task's
    shuffle buffer; None keeps seqio's 1000. A small one (e.g. 64) starts a tiny run faster and
    saves a smaller input state with each checkpoint, at the cost of a weaker shuffle; any other
    value reads the same examples in another order.
    """
    options = None
    if shuffle_buffer_size is not None:
        if shuffle_buffer_size < 1:
            raise ValueError(f"register_suite.shuffle_buffer_size must be >= 1, got {shuffle_buffer_size}")
        options = flan_tasks.RegistrationOptions(shuffle_buffer_size=int(shuffle_buffer_size))
    if suite == "embedded":
        flan_tasks.register_embedded_suite(vocabulary=vocabulary, options=options)
    elif suite == "flan":
        flan_tasks.register_flan_collection(vocabulary=vocabulary, options=options)
    else:
        raise ValueError(f"unknown task suite {suite!r}; valid suites: {', '.join(SUITES)}")


def resolve_training_mixture(suite: str, mixture_or_task_name: str | None, held_out_cluster: str | None) -> str:
    """MIXTURE_OR_TASK_NAME if given, else the held-out training mixture of HELD_OUT_CLUSTER.

    Validates the cluster name first (the error lists the valid names) and, for held-out
    mixtures, runs the leak check so no held-out data can reach training.
    """
    if held_out_cluster is not None:
        flan_tasks.held_out_training_clusters(suite, held_out_cluster)  # raises UnknownClusterError
    if mixture_or_task_name is None:
        if held_out_cluster is None:
            return f"{suite}_all_train"
        mixture_or_task_name = f"{suite}_held_out_{held_out_cluster}_train"
    if held_out_cluster is not None:
        flan_tasks.check_no_leak(mixture_or_task_name, held_out_cluster=held_out_cluster)
    seqio.get_mixture_or_task(mixture_or_task_name)  # fails clearly when not registered
    return mixture_or_task_name
