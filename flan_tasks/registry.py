"""Turn DatasetSpecs into seqio Tasks and Mixtures (suite-agnostic core of flan_tasks).

Names follow docs/ARCHITECTURE.md: `{suite}_{dataset}_train`, `{suite}_{dataset}_t{k}_{val|test}_
{rank|gen}`, `{suite}_all_train`, `{suite}_held_out_{cluster}_train` and `..._eval`.
Registration is idempotent: the same call twice is a no-op; a call with different settings
replaces what the suite registered before.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from flan_tasks import batched, mixing
from flan_tasks import clustering as clusters_lib
from flan_tasks import preprocessors as prep
from flan_tasks.spec import DatasetSpec, Template
from flan_tasks.validation import validate_static

EVAL_SPLITS = {"val": "validation", "test": "reported"}  # name suffix -> Splits attribute
_NAME_OK = re.compile(r"^[a-z0-9_]+$")


SHUFFLE_BUFFER_SIZE = seqio.dataset_providers.SHUFFLE_BUFFER_SIZE  # seqio's default task shuffle buffer (1000)


@dataclasses.dataclass(frozen=True)
class RegistrationOptions:
    """Knobs of task construction; defaults are the paper's settings.

    example_cap: per-dataset cap on training examples (None: no cap).
    rate_cap: examples-proportional mixing-rate cap (None: pure examples-proportional).
    template_seed: key of the per-example template draw in training.
    include_options: False is the ablation that drops the OPTIONS block from every prompt.
    flan_wrapper: wrap inputs as `0 {inputs} X 1 FLAN` (the 2021 code's format).
    classification_generation: also register `_gen` eval tasks for classification datasets.
    shuffle_buffer_size: each training task's shuffle buffer (default: seqio's, 1000). A smaller one
        makes a run start faster and its saved input state smaller (tiny and debugging runs), and
        shuffles less; it changes the order of the examples, not the rows.
    """

    example_cap: int | None = mixing.DEFAULT_EXAMPLE_CAP
    rate_cap: int | None = mixing.DEFAULT_RATE_CAP
    template_seed: int = 0
    include_options: bool = True
    flan_wrapper: bool = False
    classification_generation: bool = False
    shuffle_buffer_size: int = SHUFFLE_BUFFER_SIZE


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a registered task is: its suite, dataset, cluster and role."""

    name: str
    suite: str
    dataset: str
    cluster: str
    kind: str  # 'train' | 'rank' | 'generation'
    split: str  # 'train' | 'val' | 'test'
    template_index: int | None
    rate: float | None
    spec: DatasetSpec = dataclasses.field(compare=False, repr=False)
    num_shots: int = 0  # > 0 only for few-shot variants (flan_tasks.few_shot)


@dataclasses.dataclass
class _SuiteState:
    key: tuple
    specs: tuple[DatasetSpec, ...]
    options: RegistrationOptions
    tasks: list[str]
    mixtures: list[str]
    vocabulary: Any = None
    seed: int = 0
    # Names registered on top of the suite (e.g. few-shot variants); removed with the suite.
    variant_tasks: list[str] = dataclasses.field(default_factory=list)
    variant_mixtures: list[str] = dataclasses.field(default_factory=list)


_TASKS: dict[str, TaskInfo] = {}
_SUITES: dict[str, _SuiteState] = {}


def task_info(task_name: str) -> TaskInfo:
    """Metadata of a task registered by flan_tasks; KeyError names the fix otherwise."""
    if task_name not in _TASKS:
        raise KeyError(
            f"task {task_name!r} was not registered by flan_tasks; call "
            "flan_tasks.register_embedded_suite() or register_flan_collection() first"
        )
    return _TASKS[task_name]


def registered_specs(suite: str) -> tuple[DatasetSpec, ...]:
    """The specs a suite was registered with; ValueError if it is not registered."""
    if suite not in _SUITES:
        raise ValueError(f"suite {suite!r} is not registered; registered: {sorted(_SUITES)}")
    return _SUITES[suite].specs


def registered_options(suite: str) -> RegistrationOptions:
    """The RegistrationOptions a registered suite was built with."""
    registered_specs(suite)
    return _SUITES[suite].options


def registered_vocabulary(suite: str) -> seqio.Vocabulary:
    """The vocabulary a registered suite's tasks tokenize with."""
    registered_specs(suite)
    return _SUITES[suite].vocabulary


def registered_seed(suite: str) -> int:
    """The generator seed a registered suite was built with."""
    registered_specs(suite)
    return _SUITES[suite].seed


def suite_key(suite: str) -> tuple:
    """A value that changes whenever the suite is registered again with other settings."""
    registered_specs(suite)
    return _SUITES[suite].key


def add_variant_task(suite: str, name: str, info: dict, source, preprocessors) -> str:
    """Register a task derived from a registered suite (e.g. a few-shot variant).

    It uses the suite's vocabulary, gets a TaskInfo, and is removed when the suite is
    registered again with other settings or by `remove_variants`.
    """
    state = _SUITES[suite]
    seqio.TaskRegistry.add(
        name, source=source, preprocessors=preprocessors, output_features=_features(state.vocabulary)
    )
    _TASKS[name] = TaskInfo(name=name, suite=suite, **info)
    state.variant_tasks.append(name)
    return name


def add_variant_mixture(suite: str, name: str, tasks: list[tuple[str, Any]]) -> None:
    """Register a mixture of variant tasks of a registered suite (nothing when `tasks` is empty)."""
    if tasks:
        seqio.MixtureRegistry.add(name, tasks)
        _SUITES[suite].variant_mixtures.append(name)


def remove_variants(suite: str, names: Sequence[str]) -> None:
    """Unregister variant tasks and mixtures of a suite (names it does not hold are ignored)."""
    state = _SUITES.get(suite)
    if state is None:
        return
    names = set(names)
    for name in [n for n in state.variant_mixtures if n in names]:
        seqio.MixtureRegistry.remove(name)
        state.variant_mixtures.remove(name)
    for name in [n for n in state.variant_tasks if n in names]:
        seqio.TaskRegistry.remove(name)
        _TASKS.pop(name, None)
        state.variant_tasks.remove(name)


def train_task_name(suite: str, dataset: str) -> str:
    return f"{suite}_{dataset}_train"


def eval_task_name(suite: str, dataset: str, k: int, split: str, kind: str) -> str:
    return f"{suite}_{dataset}_t{k}_{split}_{'rank' if kind == 'rank' else 'gen'}"


def _vocab_key(vocabulary: seqio.Vocabulary) -> tuple:
    return (
        type(vocabulary).__name__,
        getattr(vocabulary, "sentencepiece_model_file", None),
        getattr(vocabulary, "extra_ids", None),
    )


def _features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    return {
        "inputs": seqio.Feature(vocabulary, add_eos=True),
        "targets": seqio.Feature(vocabulary, add_eos=True),
    }


def _records_to_columns(records: list[dict]) -> dict[str, np.ndarray]:
    if not records:
        raise ValueError("a generated split is empty; generators must return at least one record")
    return {key: np.asarray([r[key] for r in records]) for key in records[0]}


class _Generated:
    """Records of a generated dataset, made once per (split, seed) and kept."""

    def __init__(self, spec: DatasetSpec, seed: int):
        self.spec, self.seed, self._cache, self._columns = spec, seed, {}, {}

    def records(self, split: str) -> list[dict]:
        if split not in self._cache:
            self._cache[split] = list(self.spec.generator(split, self.seed))
        return self._cache[split]

    def dataset(self, split: str, cap: int | None) -> tf.data.Dataset:
        # Columns are converted to numpy once; mixtures rebuild their task datasets often.
        if (split, cap) not in self._columns:
            self._columns[split, cap] = _records_to_columns(self.records(split)[:cap])
        return tf.data.Dataset.from_tensor_slices(self._columns[split, cap])

    def source(self, split_map: dict[str, str], cap: int | None = None) -> seqio.FunctionDataSource:
        def dataset_fn(split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
            del shuffle_files, seed  # generated data is already in a fixed, seeded order
            return self.dataset(split_map[split], cap)

        counts = {name: len(self.records(s)[:cap]) for name, s in split_map.items()}
        return seqio.FunctionDataSource(dataset_fn, splits=tuple(split_map), num_input_examples=counts)


def _source(spec: DatasetSpec, gen: _Generated | None, split_map: dict[str, str], cap=None):
    if gen is not None:
        return gen.source(split_map, cap)
    return seqio.TfdsDataSource(tfds_name=spec.tfds_name, splits=split_map)


def _tail() -> list:
    return [seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim]


def _train_rate(spec: DatasetSpec, gen: _Generated | None, opts: RegistrationOptions):
    if gen is not None:
        n = len(gen.records(spec.splits.train))
    elif spec.num_train_examples is not None:
        n = spec.num_train_examples
    else:
        return mixing.seqio_rate_fn(opts.rate_cap)
    return mixing.examples_proportional_rate(n, opts.rate_cap, opts.example_cap)


def _add_task(name: str, info: dict, source, preprocessors, vocabulary, **task_kwargs) -> str:
    seqio.TaskRegistry.add(
        name, source=source, preprocessors=preprocessors, output_features=_features(vocabulary), **task_kwargs
    )
    _TASKS[name] = TaskInfo(name=name, **info)
    _SUITES[info["suite"]].tasks.append(name)  # recorded at once so a failed registration can undo it
    return name


def _register_train_task(suite: str, spec: DatasetSpec, gen, vocabulary, opts: RegistrationOptions, base) -> None:
    s = spec.splits
    train_map = {"train": s.train, "validation": s.validation, "test": s.reported}
    rate = _train_rate(spec, gen, opts)
    _add_task(
        train_task_name(suite, spec.name),
        dict(
            base,
            kind="train",
            split="train",
            template_index=None,
            rate=rate if isinstance(rate, float) else None,
        ),
        _source(spec, gen, train_map, opts.example_cap),
        # Everything before the cache placeholder is independent of sequence lengths and of the
        # read order (the template is a content hash, rendering.template_index_tf), so it is what
        # the offline cache stores (`python -m flan_tasks cache`); only EOS/trim runs at read time.
        batched.train_preprocessors(
            spec, opts.example_cap, opts.template_seed, opts.include_options, opts.flan_wrapper),
        vocabulary,
        shuffle_buffer_size=opts.shuffle_buffer_size,
    )


def _register_dataset(suite: str, spec: DatasetSpec, gen, vocabulary, opts: RegistrationOptions) -> None:
    base = dict(suite=suite, dataset=spec.name, cluster=spec.cluster, spec=spec)
    s = spec.splits
    if s.train:  # eval-only datasets (empty train split, e.g. WSC273) get no training task
        _register_train_task(suite, spec, gen, vocabulary, opts, base)
    kinds = eval_kinds(spec, opts)
    for k in spec.scored_template_indices():
        template: Template = spec.templates[k]
        for split, attr in EVAL_SPLITS.items():
            slice_ = getattr(s, attr)
            # Both seqio split names read this task's own slice (see flan_tasks docstring).
            split_map = {"validation": slice_, "test": slice_}
            for kind in kinds:
                render = prep.render_rank if kind == "rank" else prep.render_generation
                _add_task(
                    eval_task_name(suite, spec.name, k, split, kind),
                    dict(base, kind=kind, split=split, template_index=k, rate=None),
                    _source(spec, gen, split_map),
                    [
                        prep.process_records(spec),
                        render(template, opts.include_options, opts.flan_wrapper),
                        *_tail(),
                    ],
                    vocabulary,
                )


def eval_kinds(spec: DatasetSpec, opts: RegistrationOptions | None = None) -> tuple[str, ...]:
    """Which eval task kinds a dataset gets: rank for classification, generation otherwise."""
    if not spec.is_classification:
        return ("generation",)
    if opts is not None and opts.classification_generation:
        return ("rank", "generation")
    return ("rank",)


def _add_mixture(suite: str, name: str, tasks: list[tuple[str, Any]]) -> None:
    if not tasks:
        return  # a cluster with no datasets in this suite has no mixture
    seqio.MixtureRegistry.add(name, tasks)
    _SUITES[suite].mixtures.append(name)


def _register_mixtures(suite: str, specs: Sequence[DatasetSpec], rules: clusters_lib.ClusterRules) -> None:
    def train_entry(spec):
        name = train_task_name(suite, spec.name)
        return (name, _TASKS[name].rate or mixing.seqio_rate_fn(_SUITES[suite].options.rate_cap))

    specs = [s for s in specs if s.splits.train]
    _add_mixture(suite, f"{suite}_all_train", [train_entry(s) for s in specs])
    for cluster in rules.clusters:
        allowed = set(clusters_lib.held_out_training_clusters(suite, cluster))
        _add_mixture(
            suite,
            f"{suite}_held_out_{cluster}_train",
            [train_entry(s) for s in specs if s.cluster in allowed],
        )
        evals = [
            (n, 1.0)
            for n, info in _TASKS.items()
            if info.suite == suite
            and info.cluster == cluster
            and info.kind != "train"
            and info.split == "test"
        ]
        _add_mixture(suite, f"{suite}_held_out_{cluster}_eval", evals)


def _unregister(suite: str) -> None:
    state = _SUITES.get(suite)
    if state is None:
        return
    remove_variants(suite, [*state.variant_tasks, *state.variant_mixtures])
    del _SUITES[suite]
    for name in state.mixtures:
        seqio.MixtureRegistry.remove(name)
    for name in state.tasks:
        seqio.TaskRegistry.remove(name)
        _TASKS.pop(name, None)


def _check_specs(suite: str, specs: Sequence[DatasetSpec], rules: clusters_lib.ClusterRules) -> None:
    if not _NAME_OK.match(suite):
        raise ValueError(f"suite name {suite!r} must use only [a-z0-9_]")
    seen = set()
    for spec in specs:
        if not _NAME_OK.match(spec.name):
            raise ValueError(
                f"dataset name {spec.name!r} must use only [a-z0-9_] (it becomes a seqio task name)"
            )
        if spec.name in seen:
            raise ValueError(f"dataset {spec.name!r} appears twice in suite {suite!r}")
        seen.add(spec.name)
        if spec.cluster not in rules.clusters:
            raise clusters_lib.UnknownClusterError(
                f"dataset {spec.name!r} has cluster {spec.cluster!r}; valid clusters of suite "
                f"{suite!r}: {', '.join(rules.clusters)}"
            )
        if (spec.generator is None) == (spec.tfds_name is None):
            raise ValueError(f"dataset {spec.name!r} must set exactly one of tfds_name and generator")
        validate_static(spec)


def register_suite(
    suite: str,
    specs: Sequence[DatasetSpec],
    *,
    vocabulary: seqio.Vocabulary | None = None,
    cluster_rules: clusters_lib.ClusterRules | None = None,
    options: RegistrationOptions | None = None,
    seed: int = 0,
) -> list[str]:
    """Register every task and mixture of a suite; returns the registered names (tasks, then mixtures).

    vocabulary defaults to seqio.ByteVocabulary(); cluster_rules defaults to the suite's rules in
    flan_tasks.clustering; seed is passed to the generators of generated datasets.
    """
    vocabulary = vocabulary if vocabulary is not None else seqio.ByteVocabulary()
    options = options or RegistrationOptions()
    if cluster_rules is not None:
        clusters_lib.set_cluster_rules(suite, cluster_rules)
    rules = clusters_lib.cluster_rules(suite)
    specs = tuple(specs)
    key = (specs, _vocab_key(vocabulary), options, rules, seed)
    if suite in _SUITES and _SUITES[suite].key == key:
        return [*_SUITES[suite].tasks, *_SUITES[suite].mixtures]
    _check_specs(suite, specs, rules)
    _unregister(suite)
    state = _SUITES[suite] = _SuiteState(key, specs, options, [], [], vocabulary=vocabulary, seed=seed)
    try:
        for spec in specs:
            gen = _Generated(spec, seed) if spec.generator is not None else None
            _register_dataset(suite, spec, gen, vocabulary, options)
        _register_mixtures(suite, specs, rules)
    except Exception:
        _unregister(suite)  # leave no half-registered suite behind
        raise
    return [*state.tasks, *state.mixtures]
