"""Processors: one TFDS record (a dict of tf tensors) -> the named fields our templates use.

Every processor returns plain tf ops so it runs inside tf.data. Classification processors add
`options` (1-D string tensor in the label-id order of the TFDS feature, or the record's own
choices), `label` (int32 index into `options`) and `answer` (the gold option). Generation
processors add `answer` (the training target) and, where a dataset has several references,
`answers` (1-D string tensor) for the metrics.

Keep functions (`keep_*`) return a scalar bool and drop records a processor cannot use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

Record = Mapping[str, tf.Tensor]
Processor = Callable[[Record], dict]

# Option strings, in the label-id order of the TFDS ClassLabel (checked by tests).
ANLI_OPTIONS = ("Yes", "It's impossible to say", "No")  # e, n, c
CB_OPTIONS = ("Yes", "No", "It's impossible to say")  # entailment, contradiction, neutral
MNLI_OPTIONS = ("yes", "it is not possible to tell", "no")  # entailment, neutral, contradiction
YES_NO = ("yes", "no")  # entailment, not_entailment
NO_YES = ("no", "yes")  # false/not_*, true/*
SENTIMENT = ("negative", "positive")
STSB_OPTIONS = ("0", "1", "2", "3", "4", "5")
AG_NEWS_OPTIONS = ("World", "Sports", "Business", "Science/Tech")
TREC_OPTIONS = ("description", "entity", "abbreviation", "human", "numeric", "location")
COLA_OPTIONS = ("unacceptable", "acceptable")
WIC_OPTIONS = ("different meanings", "the same meaning")


def classification(fields: dict, options: Sequence[str] | tf.Tensor, label: tf.Tensor) -> dict:
    """Add `options`, `label` (int32) and `answer` (the gold option) to `fields`."""
    options = tf.reshape(tf.convert_to_tensor(options, dtype=tf.string), [-1])
    label = tf.cast(label, tf.int32)
    return {**fields, "options": options, "label": label, "answer": tf.gather(options, label)}


def generation(fields: dict, answer: tf.Tensor, answers: tf.Tensor | None = None) -> dict:
    """Add `answer` and, when given, the 1-D `answers` references to `fields`."""
    out = {**fields, "answer": answer}
    if answers is not None:
        out["answers"] = tf.reshape(answers, [-1])
    return out


def _first_or(values: tf.Tensor, default: str) -> tf.Tensor:
    """values[0] of a 1-D string tensor, or `default` when it is empty."""
    values = tf.concat([tf.reshape(values, [-1]), tf.constant([default])], axis=0)
    return values[0]


def _nonempty_or(values: tf.Tensor, fallback: tf.Tensor) -> tf.Tensor:
    """`values` (1-D) if it has any entry, else a one-element tensor of `fallback`."""
    values = tf.reshape(values, [-1])
    return tf.cond(tf.size(values) > 0, lambda: values, lambda: tf.reshape(fallback, [1]))


def as_question(text: tf.Tensor) -> tf.Tensor:
    """Capitalise the first letter and end with '?' (BoolQ questions come lower-case, bare)."""
    text = tf.strings.strip(text)
    first = tf.strings.upper(tf.strings.substr(text, 0, 1, unit="UTF8_CHAR"))
    rest = tf.strings.substr(text, 1, tf.strings.length(text, unit="UTF8_CHAR"), unit="UTF8_CHAR")
    text = tf.strings.join([first, rest])
    return tf.strings.regex_replace(text, r"([^?])$", r"\1?")


def _strip_final_period(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.regex_replace(tf.strings.strip(text), r"\.$", "")


# ---------------------------------------------------------------- NLI
def anli(ex: Record) -> dict:
    return classification(
        {"premise": ex["context"], "hypothesis": ex["hypothesis"]}, ANLI_OPTIONS, ex["label"]
    )


def cb(ex: Record) -> dict:
    return classification({"premise": ex["premise"], "hypothesis": ex["hypothesis"]}, CB_OPTIONS, ex["label"])


def mnli(ex: Record) -> dict:
    return classification(
        {"premise": ex["premise"], "hypothesis": ex["hypothesis"]}, MNLI_OPTIONS, ex["label"]
    )


def qnli(ex: Record) -> dict:
    return classification({"question": ex["question"], "sentence": ex["sentence"]}, YES_NO, ex["label"])


def rte(ex: Record) -> dict:
    return classification({"premise": ex["premise"], "hypothesis": ex["hypothesis"]}, YES_NO, ex["label"])


def wnli(ex: Record) -> dict:
    return classification({"sentence1": ex["sentence1"], "sentence2": ex["sentence2"]}, NO_YES, ex["label"])


def keep_labelled(ex: Record) -> tf.Tensor:
    """Drop records without a gold label (SNLI's -1: annotators did not agree)."""
    return ex["label"] >= 0


# ---------------------------------------------------------------- reading comprehension
def bool_q(ex: Record) -> dict:
    fields = {"title": ex["title"], "passage": ex["passage"], "question": as_question(ex["question"])}
    return classification(fields, NO_YES, tf.cast(ex["answer"], tf.int32))


def drop(ex: Record) -> dict:
    answers = tf.concat([tf.reshape(ex["answer"], [1]), ex["validated_answers"]], axis=0)
    return generation({"passage": ex["passage"], "question": ex["question"]}, ex["answer"], answers)


def multirc(ex: Record) -> dict:
    """MultiRC rows are (paragraph, question, candidate answer) with a true/false label.

    The candidate is exposed as `response`; `answer` is the gold option (no / yes), never the
    candidate text, so targets and rank labels agree.
    """
    fields = {"paragraph": ex["paragraph"], "question": ex["question"], "response": ex["answer"]}
    return classification(fields, NO_YES, ex["label"])


def openbookqa(ex: Record) -> dict:
    q = ex["question"]
    options = tf.stack([q["choice_A"], q["choice_B"], q["choice_C"], q["choice_D"]])
    return classification({"fact": ex["fact1"], "question": q["stem"]}, options, ex["answerKey"])


def squad_v1(ex: Record) -> dict:
    texts = ex["answers"]["text"]
    fields = {"title": ex["title"], "context": ex["context"], "question": ex["question"]}
    return generation(fields, _first_or(texts, ""), texts)


def squad_v2(ex: Record) -> dict:
    """Unanswerable questions target the literal word `unanswerable`."""
    texts = _nonempty_or(ex["answers"]["text"], tf.constant("unanswerable"))
    fields = {"title": ex["title"], "context": ex["context"], "question": ex["question"]}
    return generation(fields, texts[0], texts)


# ---------------------------------------------------------------- closed-book QA
def arc(ex: Record) -> dict:
    return classification({"question": ex["question"]}, ex["choices"]["text"], ex["answerKey"])


def keep_four_choices(ex: Record) -> tf.Tensor:
    """ARC: keep the 4-choice questions whose answer key is one of them."""
    return tf.logical_and(tf.equal(tf.size(ex["choices"]["text"]), 4), ex["answerKey"] < 4)


def natural_questions(ex: Record) -> dict:
    answers = ex["answer"]
    return generation({"question": as_question(ex["question"])}, _first_or(answers, ""), answers)


def trivia_qa(ex: Record) -> dict:
    value = ex["answer"]["value"]
    answers = tf.concat([tf.reshape(value, [1]), ex["answer"]["aliases"]], axis=0)
    return generation({"question": ex["question"]}, value, answers)


# ---------------------------------------------------------------- commonsense
def copa(ex: Record) -> dict:
    is_cause = tf.equal(ex["question"], "cause")
    fields = {
        "premise": ex["premise"],
        "premise_clause": _strip_final_period(ex["premise"]),
        "relation": ex["question"],
        "connective": tf.where(is_cause, "because", "so"),
        "relation_question": tf.where(is_cause, "What was the cause?", "What happened as a result?"),
    }
    return classification(fields, tf.stack([ex["choice1"], ex["choice2"]]), ex["label"])


def hellaswag(ex: Record) -> dict:
    fields = {"activity": ex["activity_label"], "context": ex["context"]}
    return classification(fields, ex["endings"], ex["label"])


def keep_answered(ex: Record) -> tf.Tensor:
    """HellaSwag / StoryCloze: drop records whose gold ending is hidden (label below 0 or 1)."""
    return ex["label"] >= 0


def keep_answered_1based(ex: Record) -> tf.Tensor:
    return ex["label"] >= 1


def piqa(ex: Record) -> dict:
    return classification({"goal": ex["goal"]}, tf.stack([ex["sol1"], ex["sol2"]]), ex["label"])


def story_cloze(ex: Record) -> dict:
    """The TFDS label is the 1-based number of the right ending."""
    return classification({"context": ex["context"]}, ex["endings"], ex["label"] - 1)


# ---------------------------------------------------------------- sentiment
def imdb(ex: Record) -> dict:
    text = tf.strings.regex_replace(ex["text"], r"<br\s*/?>", " ")
    return classification({"text": text}, SENTIMENT, ex["label"])


def sentiment140(ex: Record) -> dict:
    return classification({"text": ex["text"]}, SENTIMENT, ex["polarity"] // 4)


def keep_polar(ex: Record) -> tf.Tensor:
    """Sentiment140: keep polarity 0 (negative) and 4 (positive); neutral test items are dropped."""
    return tf.logical_or(tf.equal(ex["polarity"], 0), tf.equal(ex["polarity"], 4))


def sst2(ex: Record) -> dict:
    return classification({"sentence": ex["sentence"]}, SENTIMENT, ex["label"])


def yelp(ex: Record) -> dict:
    text = tf.strings.regex_replace(ex["text"], r"\\n", "\n")
    text = tf.strings.regex_replace(text, r'\\"', '"')
    return classification({"text": text}, SENTIMENT, ex["label"])


# ---------------------------------------------------------------- paraphrase
def sentence_pair(ex: Record) -> dict:
    """MRPC, PAWS: sentence1 / sentence2 with no / yes."""
    return classification({"sentence1": ex["sentence1"], "sentence2": ex["sentence2"]}, NO_YES, ex["label"])


def qqp(ex: Record) -> dict:
    return classification({"question1": ex["question1"], "question2": ex["question2"]}, NO_YES, ex["label"])


def stsb(ex: Record) -> dict:
    """The float similarity score (0..5) becomes the nearest whole-number option."""
    label = tf.clip_by_value(tf.cast(tf.round(ex["label"]), tf.int32), 0, 5)
    return classification({"sentence1": ex["sentence1"], "sentence2": ex["sentence2"]}, STSB_OPTIONS, label)


# ---------------------------------------------------------------- coreference
def dpr(ex: Record) -> dict:
    return classification({"sentence": ex["sentence"], "pronoun": ex["pronoun"]}, ex["candidates"], ex["label"])


def winogrande(ex: Record) -> dict:
    """Split the sentence at the blank: options are each filler plus the rest of the sentence."""
    parts = tf.strings.split(ex["sentence"], "_", maxsplit=1)
    context = tf.strings.strip(parts[0])
    rest = parts[-1]
    options = tf.stack([tf.strings.join([ex["option1"], rest]), tf.strings.join([ex["option2"], rest])])
    return classification({"sentence": ex["sentence"], "context": context}, options, ex["label"])


def wsc(ex: Record) -> dict:
    fields = {"text": ex["text"], "noun": ex["span1_text"], "pronoun": ex["span2_text"]}
    return classification(fields, NO_YES, ex["label"])


def wsc273(ex: Record) -> dict:
    """Cut the text at the pronoun; options are each candidate plus the rest of the text."""
    text = ex["text"]
    context = tf.strings.strip(tf.strings.substr(text, 0, ex["pronoun_start"]))
    rest = tf.strings.substr(text, ex["pronoun_end"], tf.strings.length(text))
    options = tf.stack(
        [tf.strings.join([ex["option1_normalized"], rest]), tf.strings.join([ex["option2_normalized"], rest])]
    )
    fields = {"text": text, "context": context, "pronoun": ex["pronoun_text"]}
    return classification(fields, options, ex["label"])


# ---------------------------------------------------------------- reading comprehension + commonsense
def cosmos_qa(ex: Record) -> dict:
    options = tf.stack([ex["answer0"], ex["answer1"], ex["answer2"], ex["answer3"]])
    return classification({"context": ex["context"], "question": ex["question"]}, options, ex["label"])


def record(ex: Record) -> dict:
    """ReCoRD: the entities are the options; the label is the first gold answer among them."""
    passage = tf.strings.regex_replace(ex["passage"], r"@highlight\n", "- ")
    query = tf.strings.regex_replace(ex["query"], "@placeholder", "___")
    entities = ex["entities"]
    hits = tf.cast(tf.reduce_any(tf.equal(entities[:, None], ex["answers"][None, :]), axis=1), tf.int32)
    label = tf.argmax(hits, output_type=tf.int32)
    out = classification({"passage": passage, "query": query}, entities, label)
    out["answers"] = ex["answers"]
    return out


def keep_record(ex: Record) -> tf.Tensor:
    """ReCoRD: keep queries whose gold answer is among the listed entities."""
    return tf.reduce_any(tf.equal(ex["entities"][:, None], ex["answers"][None, :]))


# ---------------------------------------------------------------- translation
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "tr": "Turkish",
    "cs": "Czech",
    "fi": "Finnish",
    "ro": "Romanian",
    "ru": "Russian",
}


def translation(source: str, target: str) -> Processor:
    """A processor translating the `source` language field into the `target` one."""

    def process(ex: Record) -> dict:
        fields = {
            "source": ex[source],
            "source_language": tf.constant(LANGUAGE_NAMES[source]),
            "target_language": tf.constant(LANGUAGE_NAMES[target]),
        }
        return generation(fields, ex[target])

    process.__name__ = f"translate_{source}_{target}"
    process.__qualname__ = process.__name__
    return process


# ---------------------------------------------------------------- summarization
def aeslc(ex: Record) -> dict:
    return generation({"email": ex["email_body"]}, ex["subject_line"])


def cnn_dailymail(ex: Record) -> dict:
    return generation({"article": ex["article"]}, ex["highlights"])


def document_summary(ex: Record) -> dict:
    """Gigaword, XSum: `document` -> `summary`."""
    return generation({"document": ex["document"]}, ex["summary"])


def multi_news(ex: Record) -> dict:
    document = tf.strings.regex_replace(ex["document"], r"\s*\|\|\|\|\|\s*", "\n\n")
    return generation({"document": tf.strings.strip(document)}, ex["summary"])


def newsroom(ex: Record) -> dict:
    return generation({"title": ex["title"], "text": ex["text"]}, ex["summary"])


def rotten_tomatoes(ex: Record) -> dict:
    critics = tf.strings.reduce_join(tf.strings.join(["- ", ex["_critics"]["value"]]), separator="\n")
    return generation({"movie": ex["_movie_name"], "critics": critics}, ex["_critic_consensus"])


def idebate(ex: Record) -> dict:
    argument = tf.strings.reduce_join(ex["_argument_sentences"]["value"], separator=" ")
    return generation({"debate": ex["_debate_name"], "argument": argument}, ex["_claim"])


def samsum(ex: Record) -> dict:
    return generation({"dialogue": ex["dialogue"]}, ex["summary"])


def wiki_lingua(ex: Record) -> dict:
    answers = _nonempty_or(ex["references"], ex["target"])
    return generation({"text": ex["source"]}, ex["target"], answers)


def ag_news(ex: Record) -> dict:
    fields = {"title": ex["title"], "text": ex["description"]}
    return classification(fields, AG_NEWS_OPTIONS, ex["label"])


# ---------------------------------------------------------------- struct to text
def _gem_answers(ex: Record) -> tf.Tensor:
    return _nonempty_or(ex["references"], ex["target"])


def common_gen(ex: Record) -> dict:
    concepts = tf.strings.reduce_join(ex["concepts"], separator=", ")
    return generation({"concepts": concepts}, ex["target"], _gem_answers(ex))


def dart(ex: Record) -> dict:
    triples = tf.strings.reduce_join(tf.strings.join(["- ", ex["tripleset"]]), separator="\n")
    return generation({"triples": triples}, ex["target"], _gem_answers(ex))


def e2e_nlg(ex: Record) -> dict:
    return generation({"attributes": ex["meaning_representation"]}, ex["target"], _gem_answers(ex))


def web_nlg(ex: Record) -> dict:
    triples = tf.strings.reduce_join(tf.strings.join(["- ", ex["input"]]), separator="\n")
    fields = {"triples": triples, "category": ex["category"]}
    return generation(fields, ex["target"], _gem_answers(ex))


# ---------------------------------------------------------------- misc
def _numbered(lines: tf.Tensor) -> tf.Tensor:
    numbers = tf.strings.as_string(tf.range(1, tf.size(lines) + 1))
    return tf.strings.reduce_join(tf.strings.join([numbers, ". ", lines]), separator="\n")


def coqa(ex: Record) -> dict:
    """All questions of a story at once; the target answers them as a numbered list."""
    fields = {"story": ex["story"], "questions": _numbered(ex["questions"])}
    return generation(fields, _numbered(ex["answers"]["input_text"]))


def quac(ex: Record) -> dict:
    fields = {
        "title": ex["title"],
        "section": ex["section_title"],
        "background": ex["background"],
        "context": ex["context"],
        "question": ex["question"],
    }
    answers = _nonempty_or(ex["answers"]["text"], ex["orig_answer"]["text"])
    return generation(fields, ex["orig_answer"]["text"], answers)


def trec(ex: Record) -> dict:
    return classification({"question": ex["text"]}, TREC_OPTIONS, ex["label-coarse"])


def cola(ex: Record) -> dict:
    return classification({"sentence": ex["sentence"]}, COLA_OPTIONS, ex["label"])


def wic(ex: Record) -> dict:
    fields = {"word": ex["word"], "sentence1": ex["sentence1"], "sentence2": ex["sentence2"]}
    return classification(fields, WIC_OPTIONS, ex["label"])


def _clean_math(text: tf.Tensor) -> tf.Tensor:
    """Undo the `b'...\\n'` wrapping some math_dataset versions leave around the text."""
    text = tf.strings.regex_replace(text, r"^b'(.*)'$", r"\1")
    return tf.strings.strip(tf.strings.regex_replace(text, r"\\n$", ""))


def math_linear_1d(ex: Record) -> dict:
    return generation({"question": _clean_math(ex["question"])}, _clean_math(ex["answer"]))


def fix_punct(ex: Record) -> dict:
    """English ParaCrawl sentences with every punctuation mark removed; restore them."""
    stripped = tf.strings.regex_replace(ex["en"], r"[[:punct:]]", "")
    stripped = tf.strings.strip(tf.strings.regex_replace(stripped, r"\s+", " "))
    return generation({"text": stripped}, ex["en"])
