"""The FLAN 2021 catalog as data: one DatasetSpec per dataset configuration.

Facts (TFDS names, split slices, label orders, metrics) follow the reference catalog in
/work/shared/reference/flan_catalog.md. Splits shorthands there: A = train[:30000] / train[-200:] /
validation, B = train[:-200] / train[-200:] / validation, S = train[:30000] / validation[:200] / test,
and a trailing ' reports on the TFDS "test" split instead of "validation".

TFDS versions are the ones the installed TFDS can build. Where that differs from the reference
code's 2023 pin, the spec's description says so (winogrande 1.2.0, cnn_dailymail 3.4.0,
multi_news 2.1.0, xsum 1.1.0 from TFDS instead of huggingface:xsum).

num_train_examples is the size of the train slice (before keep_fn filtering); it lets the mixing
rate min(n, 3000) be computed without reading dataset metadata.
"""

from __future__ import annotations

from collections.abc import Callable

from flan_tasks.flan import processors as p
from flan_tasks.flan import templates_cbqa as cbqa
from flan_tasks.flan import templates_commonsense as cs
from flan_tasks.flan import templates_coref as coref
from flan_tasks.flan import templates_misc as misc
from flan_tasks.flan import templates_nli as nli
from flan_tasks.flan import templates_paraphrase as para
from flan_tasks.flan import templates_rc as rc
from flan_tasks.flan import templates_rcc as rcc
from flan_tasks.flan import templates_sentiment as senti
from flan_tasks.flan import templates_struct as struct
from flan_tasks.flan import templates_summarization as summ
from flan_tasks.flan import templates_translation as trans
from flan_tasks.spec import DatasetSpec, Splits, Template

CAP = 30000


def splits_a(reported: str = "validation", train: str = "train") -> Splits:
    """A: the first 30k of train, the last 200 of train held back, the official dev set reported."""
    return Splits(f"{train}[:30000]", f"{train}[-200:]", reported)


def splits_b(reported: str = "validation") -> Splits:
    """B: all of train but the last 200, which form the validation slice."""
    return Splits("train[:-200]", "train[-200:]", reported)


def splits_s() -> Splits:
    """S: the first 30k of train, 200 dev examples for template choice, the test split reported."""
    return Splits("train[:30000]", "validation[:200]", "test")


def held_back(n: int, reported: str = "validation", source: str = "train") -> Splits:
    """Small datasets: all of `source` but the last n, which form the validation slice."""
    return Splits(f"{source}[:-{n}]", f"{source}[-{n}:]", reported)


def _spec(
    name: str,
    cluster: str,
    tfds_name: str,
    splits: Splits,
    processor: Callable,
    templates: tuple[Template, ...],
    metrics: tuple[str, ...],
    *,
    n_train: int,
    keep_fn: Callable | None = None,
    description: str = "",
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        cluster=cluster,
        templates=templates,
        processor=processor,
        splits=splits,
        metrics=metrics,
        is_classification=any("{options_}" in t.inputs for t in templates),
        tfds_name=tfds_name,
        keep_fn=keep_fn,
        num_train_examples=n_train,
        description=description,
    )


def _cls(*args, **kwargs) -> DatasetSpec:
    spec = _spec(*args, **kwargs)
    assert spec.is_classification, spec.name
    return spec


def _gen(*args, **kwargs) -> DatasetSpec:
    spec = _spec(*args, **kwargs)
    assert not spec.is_classification, spec.name
    return spec


ACC = ("accuracy",)
SQUAD = ("squad",)
BLEU = ("bleu",)
ROUGE = ("rouge",)


def _nli() -> list[DatasetSpec]:
    c = "nli"
    anli_sizes = {"r1": 16946, "r2": 45460, "r3": 100459}
    specs = [
        _cls(
            f"anli_{r}", c, f"anli/{r}:0.1.0",
            Splits("train" if r == "r1" else "train[:30000]", "validation[:200]", "test"),
            p.anli, nli.ANLI, ACC, n_train=min(anli_sizes[r], CAP),
            description=f"Adversarial NLI round {r[1]}; labels e / n / c.",
        )
        for r in ("r1", "r2", "r3")
    ]
    specs += [
        _cls("cb", c, "super_glue/cb:1.0.2", held_back(50), p.cb, nli.CB, ("accuracy", "f1_macro"),
             n_train=200, description="CommitmentBank; label order entailment / contradiction / neutral."),
        _cls("mnli_matched", c, "glue/mnli:2.0.0", Splits("train[:30000]", "train[-200:]", "validation_matched"),
             p.mnli, nli.MNLI, ACC, n_train=CAP, description="MultiNLI, reported on the matched dev set."),
        _cls("mnli_mismatched", c, "glue/mnli:2.0.0",
             Splits("train[:30000]", "train[-200:]", "validation_mismatched"), p.mnli, nli.MNLI, ACC,
             n_train=CAP, description="MultiNLI, reported on the mismatched dev set (same training data)."),
        _cls("qnli", c, "glue/qnli:2.0.0", splits_a(), p.qnli, nli.QNLI, ACC, n_train=CAP),
        _cls("rte", c, "super_glue/rte:1.0.2", splits_b(), p.rte, nli.RTE, ACC, n_train=2290),
        _cls("snli", c, "snli:1.1.0", splits_s(), p.mnli, nli.SNLI, ACC, n_train=CAP, keep_fn=p.keep_labelled,
             description="SNLI; pairs without a gold label (-1) are dropped."),
        _cls("wnli", c, "glue/wnli:2.0.0", held_back(30), p.wnli, nli.WNLI, ACC, n_train=605),
    ]
    return specs


def _reading_comprehension() -> list[DatasetSpec]:
    c = "reading_comprehension"
    return [
        _cls("bool_q", c, "bool_q:1.0.0", splits_b(), p.bool_q, rc.BOOL_Q, ACC, n_train=9227),
        _gen("drop", c, "drop:2.0.0", Splits("train[:30000]", "train[-200:]", "dev"), p.drop, rc.DROP, SQUAD,
             n_train=CAP),
        _cls("multirc", c, "super_glue/multirc:1.0.2", splits_b(), p.multirc, rc.MULTIRC,
             ("accuracy", "f1_binary"), n_train=27043,
             description="MultiRC: one row per (question, candidate answer); F1a over candidates."),
        _cls("openbookqa", c, "openbookqa:0.1.0", Splits("train", "validation[:200]", "test"), p.openbookqa,
             rc.OPENBOOKQA, ACC, n_train=4957, description="OpenbookQA with its gold science fact shown."),
        _gen("squad_v1", c, "squad/v1.1:3.0.0", splits_a(), p.squad_v1, rc.SQUAD_V1, SQUAD, n_train=CAP),
        _gen("squad_v2", c, "squad/v2.0:3.0.0", splits_a(), p.squad_v2, rc.SQUAD_V2, SQUAD, n_train=CAP,
             description="SQuAD 2.0; unanswerable questions target 'unanswerable'."),
    ]


def _closed_book_qa() -> list[DatasetSpec]:
    c = "closed_book_qa"
    return [
        _cls("arc_easy", c, "ai2_arc/ARC-Easy:1.0.0", splits_b("test"), p.arc, cbqa.ARC, ACC, n_train=2051,
             keep_fn=p.keep_four_choices, description="ARC easy set; 4-choice questions only."),
        _cls("arc_challenge", c, "ai2_arc/ARC-Challenge:1.0.0", splits_b("test"), p.arc, cbqa.ARC, ACC,
             n_train=919, keep_fn=p.keep_four_choices, description="ARC challenge set; 4-choice questions only."),
        _gen("natural_questions", c, "natural_questions_open:1.0.0", splits_a(), p.natural_questions,
             cbqa.NATURAL_QUESTIONS, ("exact_match",), n_train=CAP),
        _gen("trivia_qa", c, "trivia_qa/rc:1.1.0", splits_a(), p.trivia_qa, cbqa.TRIVIA_QA, ("exact_match",),
             n_train=CAP, description="TriviaQA (closed book); any alias counts."),
    ]


def _commonsense() -> list[DatasetSpec]:
    c = "commonsense"
    return [
        _cls("copa", c, "super_glue/copa:1.0.2", held_back(50), p.copa, cs.COPA, ACC, n_train=350),
        _cls("hellaswag", c, "hellaswag:1.1.0", splits_a(), p.hellaswag, cs.HELLASWAG, ACC, n_train=CAP,
             keep_fn=p.keep_answered),
        _cls("piqa", c, "piqa:1.0.0", held_back(100), p.piqa, cs.PIQA, ACC, n_train=16013),
        _cls("story_cloze", c, "story_cloze/2016:1.0.0", Splits("validation[:-200]", "validation[-200:]", "test"),
             p.story_cloze, cs.STORY_CLOZE, ACC, n_train=1671, keep_fn=p.keep_answered_1based,
             description="StoryCloze 2016 (manual download); trained on its validation set."),
    ]


def _sentiment() -> list[DatasetSpec]:
    c = "sentiment"
    return [
        _cls("imdb", c, "imdb_reviews/plain_text:1.0.0", splits_b("test"), p.imdb, senti.IMDB, ACC,
             n_train=24800),
        _cls("sentiment140", c, "sentiment140:1.0.0", splits_a("test"), p.sentiment140, senti.SENTIMENT140, ACC,
             n_train=CAP, keep_fn=p.keep_polar,
             description="Sentiment140; polarity 0 / 4; neutral (2) test tweets are dropped."),
        _cls("sst2", c, "glue/sst2:2.0.0", splits_a(), p.sst2, senti.SST2, ACC, n_train=CAP),
        _cls("yelp", c, "yelp_polarity_reviews:0.2.0", splits_a("test"), p.yelp, senti.YELP, ACC, n_train=CAP),
    ]


def _paraphrase() -> list[DatasetSpec]:
    c = "paraphrase"
    return [
        _cls("mrpc", c, "glue/mrpc:2.0.0", splits_b(), p.sentence_pair, para.MRPC, ("accuracy", "f1_binary"),
             n_train=3468),
        _cls("qqp", c, "glue/qqp:2.0.0", splits_a(), p.qqp, para.QQP, ("accuracy", "f1_binary"), n_train=CAP),
        # The reference names "paws_wiki:1.1.0", i.e. TFDS's default config; named explicitly because
        # seqio cannot list the files (per-host shards) of a multi-config name without one.
        _cls("paws", c, "paws_wiki/labeled_final_tokenized:1.1.0", splits_s(), p.sentence_pair, para.PAWS, ACC,
             n_train=CAP, description="PAWS-Wiki labeled_final (TFDS's default, tokenized config, as the reference)."),
        _cls("stsb", c, "glue/stsb:2.0.0", held_back(100), p.stsb, para.STSB, ("pearson", "spearman"),
             n_train=5649, description="STS-B; the 0-5 score rounded to a whole-number option."),
    ]


def _coreference() -> list[DatasetSpec]:
    c = "coreference"
    return [
        _cls("dpr", c, "definite_pronoun_resolution:1.1.0", splits_b("test"), p.dpr, coref.DPR, ACC,
             n_train=1122, description="Definite pronoun resolution; options are the two candidates."),
        _cls("winogrande", c, "winogrande:1.2.0", splits_a(train="train_xl"), p.winogrande, coref.WINOGRANDE, ACC,
             n_train=CAP, description="Winogrande XL (reference pin 1.1.0; installed TFDS builds 1.2.0)."),
        _cls("wsc", c, "super_glue/wsc:1.0.2", held_back(50), p.wsc, coref.WSC, ACC, n_train=504,
             description="SuperGLUE WSC, the training counterpart of WSC273."),
        _cls("wsc273", c, "wsc273:1.0.0", Splits("", "test", "test"), p.wsc273, coref.WSC273, ACC, n_train=0,
             description="WSC273: evaluation only (test split); no training data and no separate "
             "validation slice, so the best-template pick uses the test split itself."),
    ]


def _rc_commonsense() -> list[DatasetSpec]:
    c = "reading_comprehension_with_commonsense"
    return [
        _cls("cosmos_qa", c, "cosmos_qa:1.0.0", splits_b(), p.cosmos_qa, rcc.COSMOS_QA, ACC, n_train=25062),
        _cls("record", c, "super_glue/record:1.0.2", splits_a(), p.record, rcc.RECORD, ("squad",), n_train=CAP,
             keep_fn=p.keep_record, description="ReCoRD; options are the passage entities; EM/F1 over answers."),
    ]


WMT16_PAIRS = ("de", "tr", "cs", "fi", "ro", "ru")


def _translation() -> list[DatasetSpec]:
    c = "translation"
    pairs = [("para_crawl", "para_crawl/enes:1.2.0", "es",
              Splits("train[:30000]", "train[-1200:-1000]", "train[-1000:]")),
             ("wmt14", "wmt14_translate/fr-en:1.0.0", "fr", splits_s())]
    pairs += [("wmt16", f"wmt16_translate/{x}-en:1.0.0", x, splits_s()) for x in WMT16_PAIRS]
    specs = []
    for base, tfds_name, other, splits in pairs:
        for src, tgt in (("en", other), (other, "en")):
            specs.append(_gen(f"{base}_{src}_{tgt}", c, tfds_name, splits,
                              p.translation(src, tgt), trans.TRANSLATION, BLEU, n_train=CAP,
                              description=f"{p.LANGUAGE_NAMES[src]} to {p.LANGUAGE_NAMES[tgt]}."))
    return specs


def _summarization() -> list[DatasetSpec]:
    c = "summarization"
    opinion = Splits("train[:-1200]", "train[-1200:-1000]", "train[-1000:]")
    return [
        _gen("aeslc", c, "aeslc:1.0.0", splits_s(), p.aeslc, summ.AESLC, ROUGE, n_train=14436),
        _gen("cnn_dailymail", c, "cnn_dailymail:3.4.0", splits_s(), p.cnn_dailymail, summ.CNN_DAILYMAIL, ROUGE,
             n_train=CAP, description="CNN/DailyMail (reference pin 3.1.0; installed TFDS builds 3.4.0)."),
        _gen("gigaword", c, "gigaword:1.2.0", splits_s(), p.document_summary, summ.GIGAWORD, ROUGE, n_train=CAP),
        _gen("multi_news", c, "multi_news:2.1.0", splits_s(), p.multi_news, summ.MULTI_NEWS, ROUGE, n_train=CAP,
             description="Multi-News (reference pin 1.0.0; installed TFDS builds 2.1.0)."),
        _gen("newsroom", c, "newsroom:1.0.0", splits_s(), p.newsroom, summ.NEWSROOM, ROUGE, n_train=CAP,
             description="Newsroom (manual download)."),
        _gen("opinion_abstracts_rotten_tomatoes", c, "opinion_abstracts/rotten_tomatoes:1.0.0", opinion,
             p.rotten_tomatoes, summ.ROTTEN_TOMATOES, ROUGE, n_train=2531,
             description="Critic quotes -> consensus; TFDS has only a train split, sliced here."),
        _gen("opinion_abstracts_idebate", c, "opinion_abstracts/idebate:1.0.0", opinion, p.idebate, summ.IDEBATE,
             ROUGE, n_train=1059, description="Debate argument -> claim; TFDS has only a train split, sliced here."),
        _gen("samsum", c, "samsum:1.0.0", splits_s(), p.samsum, summ.SAMSUM, ROUGE, n_train=14732),
        _gen("xsum", c, "xsum:1.1.0", splits_s(), p.document_summary, summ.XSUM, ROUGE, n_train=CAP,
             description="XSum from the TFDS builder (the reference code used huggingface:xsum)."),
        _gen("wiki_lingua_english_en", c, "gem/wiki_lingua_english_en:1.1.0", splits_s(), p.wiki_lingua,
             summ.WIKI_LINGUA, ROUGE, n_train=CAP),
        _cls("ag_news", c, "ag_news_subset:1.0.0", splits_a("test"), p.ag_news, summ.AG_NEWS, ACC, n_train=CAP,
             description="AG News topic classification (the reference code files it under summarization)."),
    ]


def _struct_to_text() -> list[DatasetSpec]:
    c = "struct_to_text"
    return [
        _gen("common_gen", c, "gem/common_gen:1.1.0", splits_a(), p.common_gen, struct.COMMON_GEN, ROUGE,
             n_train=CAP),
        _gen("dart", c, "gem/dart:1.1.0", splits_a(), p.dart, struct.DART, ROUGE, n_train=CAP),
        _gen("e2e_nlg", c, "gem/e2e_nlg:1.1.0", splits_a(), p.e2e_nlg, struct.E2E_NLG, ROUGE, n_train=CAP),
        _gen("web_nlg_en", c, "gem/web_nlg_en:1.1.0", splits_a(), p.web_nlg, struct.WEB_NLG, ROUGE, n_train=CAP),
    ]


def _misc() -> list[DatasetSpec]:
    c = "misc"
    return [
        _gen("coqa", c, "coqa:1.0.0", held_back(100, "test"), p.coqa, misc.COQA, SQUAD, n_train=7099,
             description="CoQA: all questions of a story answered at once as a numbered list."),
        _gen("quac", c, "quac:1.0.0", splits_a(), p.quac, misc.QUAC, SQUAD, n_train=CAP),
        _cls("trec", c, "trec:1.0.0", splits_b("test"), p.trec, misc.TREC, ACC, n_train=5252,
             description="TREC question classification, coarse labels."),
        _cls("cola", c, "glue/cola:2.0.0", splits_b(), p.cola, misc.COLA, ("accuracy", "matthews_corr"),
             n_train=8351),
        _cls("wic", c, "super_glue/wic:1.0.2", splits_b(), p.wic, misc.WIC, ACC, n_train=5228),
        _gen("math_linear_1d", c, "math_dataset/algebra__linear_1d:1.0.0", splits_a("test"), p.math_linear_1d,
             misc.MATH, ("exact_match",), n_train=CAP),
        _gen("fix_punct", c, "para_crawl/enda:1.2.0",
             Splits("train[30200:60200]", "train[60200:60400]", "train[-3000:]"), p.fix_punct, misc.FIX_PUNCT,
             ("edit_distance",), n_train=CAP, description="Restore punctuation of English ParaCrawl sentences."),
    ]


def catalog() -> tuple[DatasetSpec, ...]:
    """Every dataset configuration of the catalog, grouped by cluster."""
    return tuple(
        spec
        for group in (_nli, _reading_comprehension, _closed_book_qa, _commonsense, _sentiment, _paraphrase,
                      _coreference, _rc_commonsense, _translation, _summarization, _struct_to_text, _misc)
        for spec in group()
    )
