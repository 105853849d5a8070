"""Golden tests: a hand-written TFDS-shaped record in, the exact prompt and target out.

Rendering goes through the machinery's `flan_tasks.rendering.render_tf` for a fixed template
index, so a change to a template, a processor or the OPTIONS block shows up here.
"""

from __future__ import annotations

import pytest
import tensorflow as tf

from flan_tasks.flan import flan_specs
from flan_tasks.rendering import render_tf

SPECS = {s.name: s for s in flan_specs()}


def _tensors(record):
    if isinstance(record, dict):
        return {k: _tensors(v) for k, v in record.items()}
    return tf.constant(record)


def render(name: str, record: dict, index: int) -> tuple[str, str]:
    spec = SPECS[name]
    ex = _tensors(record)
    if spec.keep_fn is not None:
        assert bool(spec.keep_fn(ex))
    out = spec.processor(ex)
    template = spec.templates[index]
    return render_tf(template.inputs, out).numpy().decode(), render_tf(template.targets, out).numpy().decode()


GOLDEN = [
    (
        "mnli_matched",
        {"premise": "The museum opens at nine.", "hypothesis": "The museum is closed all day.", "label": 2, "idx": 0},
        0,
        "Premise: The museum opens at nine.\n\nHypothesis: The museum is closed all day.\n\n"
        "Does the premise imply the hypothesis?\n\nOPTIONS:\n- yes\n- it is not possible to tell\n- no",
        "no",
    ),
    (
        "cb",
        {"premise": "I doubt he'll come.", "hypothesis": "he will come", "label": 1, "idx": 3},
        5,
        "Premise: I doubt he'll come.\nHypothesis: he will come\n\nDoes the premise entail the hypothesis?"
        "\n\nOPTIONS:\n- Yes\n- No\n- It's impossible to say",
        "No",
    ),
    (
        "bool_q",
        {"title": "Tides", "passage": "Tides are caused by the Moon.", "question": "are tides caused by the moon",
         "answer": True},
        1,
        "Article about Tides:\nTides are caused by the Moon.\n\nAre tides caused by the moon?\n\nOPTIONS:\n- no\n- yes",
        "yes",
    ),
    (
        "squad_v2",
        {"title": "Nile", "context": "The Nile flows north.", "question": "Who named the Nile?",
         "id": "x", "is_impossible": True,
         "answers": {"text": tf.constant([], tf.string), "answer_start": tf.constant([], tf.int32)},
         "plausible_answers": {"text": ["Greeks"], "answer_start": [0]}},
        1,
        "The Nile flows north.\n\nQuestion: Who named the Nile?\nAnswer (or \"unanswerable\"):",
        "unanswerable",
    ),
    (
        "arc_challenge",
        {"id": "q1", "question": "Which gas do plants absorb?",
         "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": [0, 1, 2, 3]}, "answerKey": 1},
        2,
        "Question: Which gas do plants absorb?\n\nWhich of the choices is correct?\n\n"
        "OPTIONS:\n- oxygen\n- carbon dioxide\n- helium\n- neon",
        "carbon dioxide",
    ),
    (
        "copa",
        {"premise": "The glass fell off the table.", "choice1": "It shattered.", "choice2": "It was refilled.",
         "question": "effect", "label": 0, "idx": 1},
        2,
        "Complete the sentence with the most plausible ending.\n\nThe glass fell off the table, so...\n\n"
        "OPTIONS:\n- It shattered.\n- It was refilled.",
        "It shattered.",
    ),
    (
        "sentiment140",
        {"text": "my flight got cancelled again", "polarity": 0, "date": "", "query": "", "user": "u"},
        1,
        "Tweet: my flight got cancelled again\n\nIs the feeling behind it positive or negative?"
        "\n\nOPTIONS:\n- negative\n- positive",
        "negative",
    ),
    (
        "stsb",
        {"sentence1": "A man plays guitar.", "sentence2": "A man is playing a guitar.", "label": 4.75, "idx": 0},
        4,
        "Give a semantic similarity score (0-5):\nA man plays guitar.\nA man is playing a guitar."
        "\n\nOPTIONS:\n- 0\n- 1\n- 2\n- 3\n- 4\n- 5",
        "5",
    ),
    (
        "wsc273",
        {"text": "The trophy didn't fit in the case because it was too big.", "pronoun_text": "it",
         "pronoun_start": 42, "pronoun_end": 44, "option1": "The trophy", "option1_normalized": "the trophy",
         "option2": "The case", "option2_normalized": "the case", "label": 0, "idx": 0},
        0,
        "The trophy didn't fit in the case because ...\n\nOPTIONS:\n- the trophy was too big.\n- the case was too big.",
        "the trophy was too big.",
    ),
    (
        "record",
        {"passage": "Ana met Ben in Oslo.\n@highlight\nThey signed a deal", "query": "@placeholder flew home.",
         "entities": ["Ana", "Ben", "Oslo"], "answers": ["Ben"]},
        0,
        "Ana met Ben in Oslo.\n- They signed a deal\n\nFill in the blank: ___ flew home.\n\nOPTIONS:\n- Ana\n- Ben\n- Oslo",
        "Ben",
    ),
    (
        "wmt16_de_en",
        {"de": "Guten Morgen.", "en": "Good morning."},
        3,
        "German: Guten Morgen.\nEnglish:",
        "Good morning.",
    ),
    (
        "samsum",
        {"dialogue": "Ann: lunch?\nBob: sure, at 1", "summary": "Ann and Bob will have lunch at 1.", "id": "1"},
        2,
        "Dialogue:\nAnn: lunch?\nBob: sure, at 1\n\nSummary:",
        "Ann and Bob will have lunch at 1.",
    ),
    (
        "ag_news",
        {"title": "Stocks rally", "description": "Markets rose on Monday.", "label": 2},
        0,
        "Stocks rally\n\nMarkets rose on Monday.\n\nWhat is this news article about?"
        "\n\nOPTIONS:\n- World\n- Sports\n- Business\n- Science/Tech",
        "Business",
    ),
    (
        "e2e_nlg",
        {"gem_id": "g", "gem_parent_id": "g", "meaning_representation": "name[Aromi], food[Chinese]",
         "target": "Aromi serves Chinese food.", "references": tf.constant([], tf.string)},
        4,
        "Attributes: name[Aromi], food[Chinese]\nDescription:",
        "Aromi serves Chinese food.",
    ),
    (
        "coqa",
        {"source": "s", "story": "Tom has a red bike.", "questions": ["What does Tom have?", "What color?"],
         "answers": {"input_text": ["a bike", "red"], "answer_start": [0, 0], "answer_end": [0, 0]}},
        2,
        "Story:\nTom has a red bike.\n\nQuestions:\n1. What does Tom have?\n2. What color?\n\nAnswers:",
        "1. a bike\n2. red",
    ),
    (
        "fix_punct",
        {"en": "Hello, world! It's late.", "da": ""},
        2,
        "Restore the punctuation: Hello world Its late",
        "Hello, world! It's late.",
    ),
]


@pytest.mark.parametrize("name,record,index,prompt,target", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden(name, record, index, prompt, target):
    got_prompt, got_target = render(name, record, index)
    assert got_prompt == prompt
    assert got_target == target


def test_golden_covers_every_cluster():
    assert {SPECS[g[0]].cluster for g in GOLDEN} == {s.cluster for s in SPECS.values()}


def test_turned_around_template_inverts_the_task():
    spec = SPECS["imdb"]
    assert spec.templates[-1].turned_around
    prompt, target = render("imdb", {"text": "Loved it.<br />Great cast.", "label": 1}, 9)
    assert "positive" in prompt and target == "Loved it. Great cast."
