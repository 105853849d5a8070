"""Few-shot evaluation variants: exemplars from the training split placed before the prompt.

For an eval task of dataset D scored with template t, each evaluated example gets up to
`num_shots` exemplars drawn from a pool made of the first `pool_size` records of D's training
split (never the split being evaluated). Each exemplar is rendered with the same template t,
inputs and target (joined by `target_separator`), and the exemplars are placed before the
zero-shot prompt, separated from each other and from the prompt by `example_separator`.

The draw is seeded and keyed by the evaluated record's content, so the same record gets the same
exemplars wherever it appears. If the tokenized inputs (with the suite's vocabulary, counting the
EOS token the `inputs` feature appends) exceed `token_budget`, exemplars are dropped from the
front, oldest first, until they fit; the evaluated prompt itself is never cut, so a prompt that
alone exceeds the budget is evaluated zero-shot. Rank and generation rows keep the zero-shot
layout (idx, is_correct, num_options, answers); only `inputs` changes. Datasets without a training
split (eval-only ones) get no few-shot tasks.

Registration is explicit: `register_few_shot(suite, num_shots=16)` adds, on top of a registered
suite, `{suite}_{dataset}_t{k}_{val|test}_{rank|gen}_{n}shot` tasks and one
`{suite}_held_out_{cluster}_eval_{n}shot` mixture per cluster. They are removed when the suite is
registered again with other settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import seqio
import tensorflow as tf

from flan_tasks import clustering as clusters_lib
from flan_tasks import preprocessors as prep
from flan_tasks import registry
from flan_tasks.rendering import content_key_tf, render_tf, wrap_flan
from flan_tasks.spec import DatasetSpec, Template

DEFAULT_NUM_SHOTS = 16
DEFAULT_TOKEN_BUDGET = 960
DEFAULT_POOL_SIZE = 512
PREFIX_FIELD = "few_shot_prefix_"  # record field holding the exemplars; rendered before the prompt
NUM_EXEMPLARS_FIELD = "few_shot_count_"  # how many exemplars survived pruning (diagnostics)
_DRAW_KEY = 0x5EED  # second half of the hash key of the per-record draw


@dataclasses.dataclass(frozen=True)
class FewShotConfig:
    """How few-shot prompts are built; defaults follow the paper (16 exemplars, 960 tokens)."""

    num_shots: int = DEFAULT_NUM_SHOTS
    token_budget: int = DEFAULT_TOKEN_BUDGET
    seed: int = 0
    pool_size: int = DEFAULT_POOL_SIZE
    example_separator: str = "\n\n"
    target_separator: str = "\n"

    def __post_init__(self) -> None:
        if self.num_shots < 0:
            raise ValueError(f"num_shots must be >= 0, got {self.num_shots}")
        if self.token_budget < 1:
            raise ValueError(f"token_budget must be >= 1, got {self.token_budget}")
        if self.pool_size < self.num_shots:
            raise ValueError(f"pool_size ({self.pool_size}) must be >= num_shots ({self.num_shots})")


def few_shot_task_name(suite: str, dataset: str, k: int, split: str, kind: str, num_shots: int) -> str:
    """Name of the few-shot variant of an eval task (kind: 'rank' or 'generation')."""
    return f"{registry.eval_task_name(suite, dataset, k, split, kind)}_{num_shots}shot"


def few_shot_eval_mixture_name(suite: str, cluster: str, num_shots: int) -> str:
    """Name of a cluster's few-shot eval mixture (reported split)."""
    return f"{suite}_held_out_{cluster}_eval_{num_shots}shot"


def render_exemplar_tf(
    template: Template, record: Mapping[str, tf.Tensor], include_options: bool = True, target_separator: str = "\n"
) -> tf.Tensor:
    """One exemplar: the template's inputs and target for a training record, as one string."""
    inputs = render_tf(template.inputs, record, include_options)
    return tf.strings.join([inputs, target_separator, render_tf(template.targets, record, include_options)])


def exemplar_pool(
    train_records: tf.data.Dataset,
    template: Template,
    config: FewShotConfig,
    include_options: bool = True,
) -> tf.data.Dataset:
    """A one-element dataset: a 1-D string tensor of rendered exemplars (possibly empty).

    train_records: processed training records (after `spec.processor`); the first
    `config.pool_size` of them form the pool.
    """
    rendered = train_records.take(config.pool_size).map(
        lambda ex: render_exemplar_tf(template, ex, include_options, config.target_separator)
    )
    pool = rendered.batch(config.pool_size)
    # An empty training split still yields one (empty) pool, so evaluation falls back to zero-shot.
    empty = tf.data.Dataset.from_tensors(tf.zeros([0], tf.string))
    return pool.concatenate(empty).take(1)


def _token_lengths(candidates: tf.Tensor, vocabulary: seqio.Vocabulary) -> tf.Tensor:
    """Tokens of each candidate input string, plus the EOS token the inputs feature adds."""
    lengths = tf.map_fn(
        lambda s: tf.size(vocabulary.encode_tf(s), out_type=tf.int32),
        candidates,
        fn_output_signature=tf.int32,
    )
    return lengths + 1


def select_exemplars_tf(
    record: Mapping[str, tf.Tensor],
    prompt: tf.Tensor,
    pool: tf.Tensor,
    vocabulary: seqio.Vocabulary,
    config: FewShotConfig,
    flan_wrapper: bool = False,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Draw and prune exemplars for one record; returns (prefix string, number of exemplars).

    The prefix is the kept exemplars, each followed by `config.example_separator`, so that
    `prefix + prompt` is the few-shot input; it is "" when no exemplar fits or num_shots is 0.
    """
    sep = config.example_separator
    pool_n = tf.size(pool, out_type=tf.int32)
    m = tf.minimum(tf.constant(config.num_shots, tf.int32), pool_n)
    record_hash = tf.strings.to_hash_bucket_strong(
        content_key_tf(record), num_buckets=2**62, key=[int(config.seed), _DRAW_KEY]
    )
    noise = tf.random.stateless_uniform(
        [pool_n], seed=tf.stack([tf.constant(config.seed, tf.int64), record_hash])
    )
    chosen = tf.gather(pool, tf.argsort(noise)[:m])

    def candidate(j):  # exemplars j.. (dropping the first j) followed by the prompt
        text = tf.strings.reduce_join(tf.concat([chosen[j:], tf.reshape(prompt, [1])], 0), separator=sep)
        return wrap_flan(text) if flan_wrapper else text

    candidates = tf.map_fn(candidate, tf.range(m + 1), fn_output_signature=tf.string)
    fits = _token_lengths(candidates, vocabulary) <= config.token_budget
    # The first candidate that fits drops the fewest (oldest) exemplars; none fits -> zero-shot.
    first = tf.cast(tf.argmax(tf.cast(fits, tf.int32)), tf.int32)
    start = tf.where(tf.reduce_any(fits), first, m)
    kept = chosen[start:]
    prefix = tf.strings.reduce_join(kept, separator=sep)
    prefix = tf.where(start < m, tf.strings.join([prefix, sep]), tf.constant(""))
    return prefix, m - start


def add_exemplars(
    template: Template,
    pool_fn: Callable[[], tf.data.Dataset],
    vocabulary: seqio.Vocabulary,
    config: FewShotConfig,
    include_options: bool = True,
    flan_wrapper: bool = False,
) -> prep.Preprocessor:
    """Preprocessor: add PREFIX_FIELD and NUM_EXEMPLARS_FIELD to each processed eval record.

    pool_fn: () -> one-element dataset from `exemplar_pool` (built when the dataset is built).
    """

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        def add(ex, pool):
            ex = dict(ex)
            prompt = render_tf(template.inputs, ex, include_options)
            prefix, count = select_exemplars_tf(ex, prompt, pool, vocabulary, config, flan_wrapper)
            ex[PREFIX_FIELD], ex[NUM_EXEMPLARS_FIELD] = prefix, count
            return ex

        pool = pool_fn().cache().repeat()
        return tf.data.Dataset.zip((ds, pool)).map(add, num_parallel_calls=tf.data.AUTOTUNE)

    return fn


def prefixed_template(template: Template) -> Template:
    """The template whose inputs start with the exemplar prefix field."""
    return dataclasses.replace(template, inputs="{" + PREFIX_FIELD + "}" + template.inputs)


@dataclasses.dataclass
class _Registered:
    key: tuple
    names: list[str]


_REGISTERED: dict[tuple[str, int], _Registered] = {}


def _train_pool_fn(spec: DatasetSpec, gen, template: Template, config: FewShotConfig, include_options: bool):
    source = registry._source(spec, gen, {"train": spec.splits.train})

    def pool_fn() -> tf.data.Dataset:
        records = prep.process_records(spec)(source.get_dataset(split="train", shuffle=False))
        return exemplar_pool(records, template, config, include_options)

    return pool_fn


def _register_dataset(suite: str, spec: DatasetSpec, config: FewShotConfig, names: list[str]) -> None:
    opts = registry.registered_options(suite)
    vocabulary = registry.registered_vocabulary(suite)
    gen = registry._Generated(spec, registry.registered_seed(suite)) if spec.generator is not None else None
    for k in spec.scored_template_indices():
        template = spec.templates[k]
        pool_fn = _train_pool_fn(spec, gen, template, config, opts.include_options)
        for split, attr in registry.EVAL_SPLITS.items():
            slice_ = getattr(spec.splits, attr)
            source = registry._source(spec, gen, {"validation": slice_, "test": slice_})
            for kind in registry.eval_kinds(spec, opts):
                render = prep.render_rank if kind == "rank" else prep.render_generation
                name = few_shot_task_name(suite, spec.name, k, split, kind, config.num_shots)
                preprocessors = [
                    prep.process_records(spec),
                    add_exemplars(template, pool_fn, vocabulary, config, opts.include_options, opts.flan_wrapper),
                    render(prefixed_template(template), opts.include_options, opts.flan_wrapper),
                    seqio.preprocessors.tokenize,
                    seqio.preprocessors.append_eos_after_trim,
                ]
                info = dict(
                    dataset=spec.name, cluster=spec.cluster, kind=kind, split=split, template_index=k,
                    rate=None, spec=spec, num_shots=config.num_shots,
                )
                names.append(registry.add_variant_task(suite, name, info, source, preprocessors))


def register_few_shot(
    suite: str,
    num_shots: int = DEFAULT_NUM_SHOTS,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    seed: int = 0,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    example_separator: str = "\n\n",
    target_separator: str = "\n",
) -> list[str]:
    """Register the `num_shots`-shot variants of a registered suite's eval tasks; returns the names.

    Idempotent: the same call twice is a no-op. Another call with the same `num_shots` but other
    settings replaces the earlier one (names depend on `num_shots` only); variants with different
    `num_shots` coexist. The suite must be registered first (e.g. register_embedded_suite()).
    """
    config = FewShotConfig(num_shots, token_budget, seed, pool_size, example_separator, target_separator)
    key = (registry.suite_key(suite), config)
    previous = _REGISTERED.get((suite, num_shots))
    if previous is not None and previous.key == key:
        return list(previous.names)
    if previous is not None:
        registry.remove_variants(suite, previous.names)
    names: list[str] = []
    try:
        for spec in few_shot_specs(registry.registered_specs(suite)):
            _register_dataset(suite, spec, config, names)
        tasks = list(names)
        for cluster in clusters_lib.clusters(suite):
            mixture = few_shot_eval_mixture_name(suite, cluster, num_shots)
            members = [
                (n, 1.0)
                for n in tasks
                if registry.task_info(n).cluster == cluster and registry.task_info(n).split == "test"
            ]
            registry.add_variant_mixture(suite, mixture, members)
            if members:
                names.append(mixture)
    except Exception:
        registry.remove_variants(suite, names)
        _REGISTERED.pop((suite, num_shots), None)
        raise
    _REGISTERED[suite, num_shots] = _Registered(key, names)
    return list(names)


def registered_few_shot(suite: str) -> tuple[int, ...]:
    """The shot counts currently registered for a suite (dropped when the suite is re-registered)."""
    current = registry.suite_key(suite)
    return tuple(sorted(n for (s, n), r in _REGISTERED.items() if s == suite and r.key[0] == current))


def check_registered(suite: str, num_shots: int) -> None:
    """Raise ValueError naming the fix when the `num_shots` variant of a suite is not registered."""
    if num_shots not in registered_few_shot(suite):
        raise ValueError(
            f"no {num_shots}-shot tasks are registered for suite {suite!r}; call "
            f"flan_tasks.register_few_shot({suite!r}, num_shots={num_shots}) first"
        )


def few_shot_specs(specs: Sequence[DatasetSpec]) -> list[DatasetSpec]:
    """The specs that get few-shot tasks: those with a training split."""
    return [s for s in specs if s.splits.train]
