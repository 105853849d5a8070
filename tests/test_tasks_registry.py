"""Registration of the embedded suite: names, datasets through seqio, rank rows, mixtures, rates, leaks."""

import collections

import numpy as np
import pytest
import seqio

import flan_tasks
from flan_tasks import RegistrationOptions, graph_build
from flan_tasks.embedded import embedded_specs

LENGTHS = {"inputs": 256, "targets": 64}


@pytest.fixture(scope="module")
def names():
    return flan_tasks.register_embedded_suite()


def _batch(name, split="train"):
    ds = seqio.get_dataset(
        name, LENGTHS, dataset_split=split, shuffle=False, num_epochs=1,
        feature_converter=seqio.EncDecFeatureConverter(pack=True),
    )
    return next(ds.batch(4).as_numpy_iterator())


def _first_row(name, split):
    # Built as the trainer and evals build a task's rows: without AutoGraph (flan_tasks/graph_build.py).
    with graph_build.autograph_off():
        ds = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split=split, shuffle=False, num_epochs=1)
    return next(ds.take(1).as_numpy_iterator())


def test_registration_is_idempotent_and_named(names):
    assert flan_tasks.register_embedded_suite() == names
    mixtures = set(seqio.MixtureRegistry.names())
    assert "embedded_all_train" in mixtures
    for cluster in flan_tasks.clusters("embedded"):
        assert f"embedded_held_out_{cluster}_train" in mixtures
        assert f"embedded_held_out_{cluster}_eval" in mixtures
    assert "embedded_fact_nli_t0_val_rank" in names and "embedded_fact_nli_t8_test_rank" in names
    assert "embedded_fact_nli_t9_test_rank" not in names  # turned around: never rank-scored
    assert "embedded_addition_t3_test_gen" in names
    assert all(n.replace("_", "").isalnum() and n == n.lower() for n in names)


def _check_packed(batch):
    assert batch["encoder_input_tokens"].shape == (4, 256)
    assert batch["decoder_segment_ids"].max() >= 1
    assert (batch["decoder_loss_weights"].sum(axis=1) > 0).all()


def test_representative_tasks_and_mixture_yield_packed_batches(names):
    for name in ("embedded_fact_nli_train", "embedded_held_out_nli_train"):
        _check_packed(_batch(name))
    for name in ("embedded_flag_qa_t1_test_rank", "embedded_addition_t2_val_gen"):
        _check_packed(_batch(name, "validation"))


@pytest.mark.slow
def test_train_tasks_yield_packed_batches(names):
    for name in names:
        if name.endswith("_train") and name in seqio.TaskRegistry.names():
            _check_packed(_batch(name))


@pytest.mark.slow
def test_every_mixture_is_made_of_readable_tasks_and_representatives_yield_batches(names):
    # Every mixture's sub-tasks are registered tasks with positive rates (test_every_task_yields_rows
    # reads a row from each). Reading every held-out mixture too would rebuild the same ~300 task
    # pipelines once per cluster and exercise nothing new, so the whole-suite training mixture, one
    # held-out training mixture (packed, as training reads them) and one eval mixture (rows, since
    # evaluation never packs) are read.
    mixtures = [n for n in names if n in seqio.MixtureRegistry.names()]
    tasks = set(seqio.TaskRegistry.names())
    for name in mixtures:
        mixture = seqio.get_mixture_or_task(name)
        assert mixture.tasks and {t.name for t in mixture.tasks} <= tasks, name
        assert all(mixture.get_rate(t) > 0 for t in mixture.tasks), name
    cluster = flan_tasks.clusters("embedded")[0]
    for name in ("embedded_all_train", f"embedded_held_out_{cluster}_train"):
        _check_packed(_batch(name, "train"))
    assert _first_row(f"embedded_held_out_{cluster}_eval", "test")["inputs"].size > 0


def _first_eval_tasks(names) -> dict[tuple[str, str], str]:
    """The first eval task of each (dataset, kind)."""
    firsts = {}
    for n in names:
        if n in seqio.MixtureRegistry.names():
            continue
        info = flan_tasks.task_info(n)
        if info.kind != "train":
            firsts.setdefault((info.dataset, info.kind), n)
    return firsts


@pytest.mark.slow
def test_one_eval_task_per_dataset_and_kind_yields_batches(names):
    firsts = _first_eval_tasks(names)
    for name in firsts.values():
        assert _batch(name, "validation")["encoder_input_tokens"].shape == (4, 256)
    assert len(firsts) == len(embedded_specs())


@pytest.mark.slow
def test_every_task_yields_rows(names):
    # Every task builds and yields tokenized rows; the packed converter path is covered per
    # dataset and kind above (packing each of the ~300 tasks would cost minutes and test nothing new).
    # A `_test_` task is its `_val_` twin on another split of the same generator, so it is read
    # only where no twin exists. The tasks packed above (every training task, the first eval task
    # of each dataset and kind) yielded their rows there.
    packed = set(_first_eval_tasks(names).values())
    for name in names:
        if name not in seqio.TaskRegistry.names() or name in packed or name.endswith("_train"):
            continue
        if "_test_" in name and name.replace("_test_", "_val_") in names:
            continue
        row = _first_row(name, "test")
        assert row["inputs"].size > 0 and row["targets"][-1] == 1  # EOS appended


def test_rank_rows_regroup(names):
    spec = next(s for s in embedded_specs() if s.name == "gender_pronouns")
    records = spec.generator("test", 0)
    task = seqio.get_mixture_or_task("embedded_gender_pronouns_t2_test_rank")
    groups = collections.defaultdict(list)
    for row in task.get_dataset(None, split="test", shuffle=False).as_numpy_iterator():
        groups[int(row["idx"][0])].append(row)
    assert sorted(groups) == list(range(len(records)))
    for i, rows in groups.items():
        assert [int(r["idx"][1]) for r in rows] == list(range(len(rows)))
        assert all(int(r["num_options"]) == len(rows) == 2 for r in rows)
        assert len({r["inputs_pretokenized"] for r in rows}) == 1
        assert [r["targets_pretokenized"].decode() for r in rows] == records[i]["options"]
        correct = [int(r["idx"][1]) for r in rows if r["is_correct"]]
        assert correct == [records[i]["label"]]
        assert rows[0]["inputs_pretokenized"].decode().endswith(flan_tasks.options_block(records[i]["options"]))


def test_generation_rows_keep_answers(names):
    task = seqio.get_mixture_or_task("embedded_passage_qa_t0_val_gen")
    rows = list(task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator())
    assert len(rows) == 100
    for row in rows:
        assert row["targets_pretokenized"] in list(row["answers"])


def test_both_split_names_read_the_eval_slice(names):
    task = seqio.get_mixture_or_task("embedded_addition_t0_val_gen")
    a = [r["inputs_pretokenized"] for r in task.get_dataset(None, split="validation", shuffle=False).as_numpy_iterator()]
    b = [r["inputs_pretokenized"] for r in task.get_dataset(None, split="test", shuffle=False).as_numpy_iterator()]
    assert a == b and len(a) == 100


def test_rates_equal_seqio_computation(names):
    mixture = seqio.get_mixture_or_task("embedded_all_train")
    for task in mixture.tasks:
        expected = seqio.mixing_rate_num_examples(task, maximum=3000)
        assert mixture.get_rate(task) == expected
    assert {mixture.get_rate(t) for t in mixture.tasks} >= {3000.0, 2000.0}
    assert {t.shuffle_buffer_size for t in mixture.tasks} == {1000}  # seqio's default, unless asked


def test_custom_caps_equal_seqio_computation():
    specs = [s for s in embedded_specs() if s.cluster in ("sentiment", "arithmetic")]
    rules = flan_tasks.ClusterRules.from_pairs(("sentiment", "arithmetic"))
    opts = RegistrationOptions(example_cap=2500, rate_cap=2200, shuffle_buffer_size=7)
    flan_tasks.register_suite("capsuite", specs, cluster_rules=rules, options=opts)
    mixture = seqio.get_mixture_or_task("capsuite_all_train")
    assert {t.shuffle_buffer_size for t in mixture.tasks} == {7}
    rows = {r.task: r for r in flan_tasks.mixture_manifest("capsuite_all_train")}
    for task in mixture.tasks:
        expected = seqio.mixing_rate_num_examples(task, maximum=2200)
        assert mixture.get_rate(task) == expected == rows[task.name].rate
        assert task.num_input_examples("train") <= 2500
    movie = seqio.get_mixture_or_task("capsuite_movie_reviews_train")
    assert mixture.get_rate(movie) == 2000.0
    assert sum(1 for _ in movie.get_dataset(None, split="train", shuffle=False)) == 2000
    capped = seqio.get_mixture_or_task("capsuite_product_reviews_train")
    assert sum(1 for _ in capped.get_dataset(None, split="train", shuffle=False)) == 2500
    assert abs(sum(r.share for r in rows.values()) - 1.0) < 1e-9


def test_ablation_and_wrapper_options():
    specs = [s for s in embedded_specs() if s.name == "fact_nli"]
    rules = flan_tasks.ClusterRules.from_pairs(("nli",))
    opts = RegistrationOptions(include_options=False, flan_wrapper=True)
    flan_tasks.register_suite("ablation", specs, cluster_rules=rules, options=opts)
    task = seqio.get_mixture_or_task("ablation_fact_nli_t0_test_rank")
    row = next(task.get_dataset(None, split="test", shuffle=False).as_numpy_iterator())
    text = row["inputs_pretokenized"].decode()
    assert "OPTIONS" not in text and text.startswith("0 ") and text.endswith("? X 1 FLAN")


def test_every_held_out_mixture_passes_leak_check(names):
    for cluster in flan_tasks.clusters("embedded"):
        flan_tasks.check_no_leak(f"embedded_held_out_{cluster}_train")
        tasks = seqio.get_mixture_or_task(f"embedded_held_out_{cluster}_train").tasks
        allowed = set(flan_tasks.held_out_training_clusters("embedded", cluster))
        assert {flan_tasks.task_info(t.name).cluster for t in tasks} == allowed


def test_leaky_mixture_fails_leak_check(names):
    seqio.MixtureRegistry.add("leaky_mixture", ["embedded_addition_train", "embedded_synonym_paraphrase_train"], default_rate=1.0)
    try:
        # paraphrase overlaps nli, so it must not train a model evaluated on held-out nli
        with pytest.raises(flan_tasks.LeakError, match="synonym_paraphrase"):
            flan_tasks.check_no_leak("leaky_mixture", held_out_cluster="nli")
        flan_tasks.check_no_leak("leaky_mixture", held_out_cluster="sentiment")
    finally:
        seqio.MixtureRegistry.remove("leaky_mixture")


def test_held_out_rules():
    assert "paraphrase" not in flan_tasks.held_out_training_clusters("embedded", "nli")
    assert "nli" not in flan_tasks.held_out_training_clusters("embedded", "paraphrase")
    flan = flan_tasks.held_out_training_clusters("flan", "commonsense")
    assert "reading_comprehension_with_commonsense" not in flan and "reading_comprehension" in flan
    rcc = flan_tasks.held_out_training_clusters("flan", "reading_comprehension_with_commonsense")
    assert "reading_comprehension" not in rcc and "commonsense" not in rcc and "nli" in rcc


def test_unknown_cluster_lists_valid_names():
    with pytest.raises(flan_tasks.UnknownClusterError, match="valid clusters: nli, sentiment") as err:
        flan_tasks.held_out_training_clusters("embedded", "astrology")
    assert isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="known suites"):
        flan_tasks.clusters("nope")


def test_eval_plan(names):
    plan = flan_tasks.eval_plan("embedded", "nli")
    assert {e.dataset for e in plan} == {"fact_nli", "place_nli"}
    assert len(plan) == 9 + 10  # fact_nli has one turned-around template
    entry = plan[0]
    assert entry.kind == "rank" and entry.options == ("yes", "it is not possible to tell", "no")
    assert entry.validation_task == "embedded_fact_nli_t0_val_rank"
    assert entry.reported_task == "embedded_fact_nli_t0_test_rank"
    gen = flan_tasks.eval_plan("embedded", "translation")
    assert all(e.kind == "generation" and e.metrics == ("bleu",) and e.options == () for e in gen)
    eval_tasks = {t.name for t in seqio.get_mixture_or_task("embedded_held_out_nli_eval").tasks}
    assert eval_tasks == {e.reported_task for e in plan}


def test_reregistering_with_other_settings_replaces(names):
    specs = [s for s in embedded_specs() if s.name == "addition"]
    rules = flan_tasks.ClusterRules.from_pairs(("arithmetic",))
    first = flan_tasks.register_suite("resuite", specs, cluster_rules=rules)
    second = flan_tasks.register_suite("resuite", specs, cluster_rules=rules, options=RegistrationOptions(template_seed=5))
    assert first == second
    row = next(seqio.get_mixture_or_task("resuite_addition_train").get_dataset(None, split="train", shuffle=False).as_numpy_iterator())
    assert np.asarray(row["inputs"]).size > 0


def test_eval_only_dataset_gets_no_training_task():
    import dataclasses

    from flan_tasks.spec import Splits

    spec = next(s for s in embedded_specs() if s.name == "size_pronouns")
    eval_only = dataclasses.replace(spec, splits=Splits(train="", validation="validation", reported="test"))
    other = next(s for s in embedded_specs() if s.name == "gender_pronouns")
    rules = flan_tasks.ClusterRules.from_pairs(("coreference",))
    names = flan_tasks.register_suite("evalonly", [eval_only, other], cluster_rules=rules)
    assert "evalonly_size_pronouns_train" not in names and "evalonly_size_pronouns_t0_test_rank" in names
    mixture = seqio.get_mixture_or_task("evalonly_all_train")
    assert [t.name for t in mixture.tasks] == ["evalonly_gender_pronouns_train"]
    assert any(e.dataset == "size_pronouns" for e in flan_tasks.eval_plan("evalonly", "coreference"))
