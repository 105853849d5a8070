"""The flan catalog as data: counts, clusters, splits, template rules."""

from __future__ import annotations

import collections

import pytest

from flan_tasks.flan import FLAN_CLUSTERS, flan_cluster_rules, flan_specs, paper_dataset_groups
from flan_tasks.spec import OPTIONS_FIELD
from flan_tasks.validation import validate_static

SPECS = {s.name: s for s in flan_specs()}


def test_paper_counts_62_datasets_in_12_clusters():
    groups = paper_dataset_groups()
    assert len(groups) == 62
    assert sorted(n for names in groups.values() for n in names) == sorted(SPECS)
    per_cluster = collections.Counter(SPECS[names[0]].cluster for names in groups.values())
    # Figure 2 of the paper: datasets per cluster.
    assert per_cluster == {
        "nli": 7, "reading_comprehension": 5, "closed_book_qa": 3, "commonsense": 4, "sentiment": 4,
        "paraphrase": 4, "coreference": 3, "reading_comprehension_with_commonsense": 2, "translation": 8,
        "summarization": 11, "struct_to_text": 4, "misc": 7,
    }
    assert {s.cluster for s in SPECS.values()} == set(FLAN_CLUSTERS)


def test_every_spec_passes_the_static_template_rules():
    for spec in SPECS.values():
        validate_static(spec)
        assert spec.tfds_name and ":" in spec.tfds_name, spec.name


def test_options_block_comes_last_after_a_blank_line():
    for spec in SPECS.values():
        if not spec.is_classification:
            continue
        scored = [spec.templates[i] for i in spec.scored_template_indices()]
        last = [t for t in scored if t.inputs.endswith("\n\n{" + OPTIONS_FIELD + "}")]
        assert len(last) >= len(scored) - 1, spec.name
        for t in spec.templates:
            if t.turned_around:
                assert "{answer}" in t.inputs and "{answer}" not in t.targets, spec.name


@pytest.mark.parametrize(
    "name,tfds_name,train,validation,reported",
    [
        ("anli_r1", "anli/r1:0.1.0", "train", "validation[:200]", "test"),
        ("anli_r3", "anli/r3:0.1.0", "train[:30000]", "validation[:200]", "test"),
        ("cb", "super_glue/cb:1.0.2", "train[:-50]", "train[-50:]", "validation"),
        ("mnli_mismatched", "glue/mnli:2.0.0", "train[:30000]", "train[-200:]", "validation_mismatched"),
        ("snli", "snli:1.1.0", "train[:30000]", "validation[:200]", "test"),
        ("wnli", "glue/wnli:2.0.0", "train[:-30]", "train[-30:]", "validation"),
        ("drop", "drop:2.0.0", "train[:30000]", "train[-200:]", "dev"),
        ("openbookqa", "openbookqa:0.1.0", "train", "validation[:200]", "test"),
        ("arc_easy", "ai2_arc/ARC-Easy:1.0.0", "train[:-200]", "train[-200:]", "test"),
        ("piqa", "piqa:1.0.0", "train[:-100]", "train[-100:]", "validation"),
        ("story_cloze", "story_cloze/2016:1.0.0", "validation[:-200]", "validation[-200:]", "test"),
        ("imdb", "imdb_reviews/plain_text:1.0.0", "train[:-200]", "train[-200:]", "test"),
        ("stsb", "glue/stsb:2.0.0", "train[:-100]", "train[-100:]", "validation"),
        ("winogrande", "winogrande:1.2.0", "train_xl[:30000]", "train_xl[-200:]", "validation"),
        ("wsc273", "wsc273:1.0.0", "", "test", "test"),
        ("para_crawl_es_en", "para_crawl/enes:1.2.0", "train[:30000]", "train[-1200:-1000]", "train[-1000:]"),
        ("wmt16_en_ro", "wmt16_translate/ro-en:1.0.0", "train[:30000]", "validation[:200]", "test"),
        ("coqa", "coqa:1.0.0", "train[:-100]", "train[-100:]", "test"),
        ("fix_punct", "para_crawl/enda:1.2.0", "train[30200:60200]", "train[60200:60400]", "train[-3000:]"),
    ],
)
def test_splits_follow_the_reference_table(name, tfds_name, train, validation, reported):
    spec = SPECS[name]
    assert spec.tfds_name == tfds_name
    assert (spec.splits.train, spec.splits.validation, spec.splits.reported) == (train, validation, reported)


def test_keep_fns_where_records_must_be_dropped():
    for name in ("snli", "sentiment140", "arc_easy", "arc_challenge", "record"):
        assert SPECS[name].keep_fn is not None, name


def test_cluster_overlap_rules():
    rules = flan_cluster_rules()
    assert rules.clusters == FLAN_CLUSTERS
    assert set(rules.overlaps["reading_comprehension_with_commonsense"]) == {"reading_comprehension", "commonsense"}
    assert rules.overlaps["nli"] == ("paraphrase",) and rules.overlaps["paraphrase"] == ("nli",)
    assert rules.overlaps["translation"] == ()


def test_translation_covers_both_directions():
    pairs = {(s.name) for s in SPECS.values() if s.cluster == "translation"}
    for x in ("de", "tr", "cs", "fi", "ro", "ru"):
        assert {f"wmt16_en_{x}", f"wmt16_{x}_en"} <= pairs
    assert {"wmt14_en_fr", "wmt14_fr_en", "para_crawl_en_es", "para_crawl_es_en"} <= pairs


def test_every_tfds_name_resolves_to_one_config():
    """seqio's TfdsDataSource.files() (per-host shards) raises for a multi-config name without a config."""
    import tensorflow_datasets as tfds

    for spec in SPECS.values():
        name, config = (spec.tfds_name.split(":")[0].split("/", 1) + [None])[:2]
        configs = [c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS or []]
        if configs:
            assert config in configs, f"{spec.name}: {spec.tfds_name} names none of {configs}"
        else:
            assert config is None, f"{spec.name}: {spec.tfds_name} names a config; the builder has none"
