"""Paraphrase: do two generated sentences mean the same (synonym swaps, reordered pairs)?"""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import T, classification

OPTIONS = ("no", "yes")


def _synonym_example(rng: random.Random) -> dict:
    name = rng.choice(lx.NAMES)
    verb, verb_syn = rng.choice(lx.PARAPHRASE_VERBS)
    adj, adj_syn = rng.choice(lx.SYNONYMS)
    obj = rng.choice(lx.OBJECTS)
    label = rng.randrange(2)
    first = f"{name} {verb} the {adj} {obj}."
    if label:
        second = f"{name} {verb_syn} the {adj_syn} {obj}."
    else:
        other = rng.choice([o for o in lx.OBJECTS if o != obj])
        second = f"{name} {verb_syn} the {adj_syn} {other}."
    return {"sentence1": first, "sentence2": second, "label": label}


def _order_example(rng: random.Random) -> dict:
    a, b, c = rng.sample(lx.NAMES, 3)
    place = rng.choice(lx.PLACES)
    label = rng.randrange(2)
    if label:
        second = f"{b} and {a} went to the {place}."
    elif rng.random() < 0.5:
        second = f"{b} and {c} went to the {place}."
    else:
        second = f"{b} and {a} went to the {rng.choice([p for p in lx.PLACES if p != place])}."
    return {"sentence1": f"{a} and {b} went to the {place}.", "sentence2": second, "label": label}


_SYNONYM_TEMPLATES = (
    T("\"{sentence1}\" and \"{sentence2}\"\nDo these mean the same thing?\n\n{options_}", "{answer}"),
    T("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nAre they paraphrases?\n\n{options_}", "{answer}"),
    T("Is \"{sentence2}\" a rewording of \"{sentence1}\"?\n\n{options_}", "{answer}"),
    T("{sentence1}\n{sentence2}\nSame meaning?\n\n{options_}", "{answer}"),
    T("Do the two sentences say the same thing?\nA: {sentence1}\nB: {sentence2}\n\n{options_}", "{answer}"),
    T("First: {sentence1}\nSecond: {sentence2}\nCould one replace the other?\n\n{options_}", "{answer}"),
    T("Compare \"{sentence1}\" with \"{sentence2}\". Equivalent?\n\n{options_}", "{answer}"),
    T("Here are two sentences.\n{sentence1}\n{sentence2}\nDo they match in meaning?\n\n{options_}", "{answer}"),
    T("{sentence1} In other words, {sentence2} Is that right?\n\n{options_}", "{answer}"),
    T("Paraphrase check:\n1. {sentence1}\n2. {sentence2}\n\n{options_}", "{answer}"),
)

_ORDER_TEMPLATES = (
    T("Does \"{sentence1}\" mean the same as \"{sentence2}\"?\n\n{options_}", "{answer}"),
    T("A: {sentence1}\nB: {sentence2}\nDo A and B describe the same event?\n\n{options_}", "{answer}"),
    T("{sentence1}\n{sentence2}\nAre these two sentences paraphrases?\n\n{options_}", "{answer}"),
    T("Is the meaning kept? \"{sentence1}\" -> \"{sentence2}\"\n\n{options_}", "{answer}"),
    T("Sentence one: {sentence1}\nSentence two: {sentence2}\nSame meaning?\n\n{options_}", "{answer}"),
    T("Tell me if these say the same.\n{sentence1}\n{sentence2}\n\n{options_}", "{answer}"),
    T("Check whether \"{sentence2}\" restates \"{sentence1}\".\n\n{options_}", "{answer}"),
    T("{sentence1} Put differently: {sentence2} Correct?\n\n{options_}", "{answer}"),
    T("Two reports:\n- {sentence1}\n- {sentence2}\nDo they agree?\n\n{options_}", "{answer}"),
    T("Are \"{sentence1}\" and \"{sentence2}\" equivalent?\n\n{options_}", "{answer}"),
)

SPECS = (
    classification(
        "synonym_paraphrase", "paraphrase", _SYNONYM_TEMPLATES, _synonym_example, 3000, OPTIONS,
        "Sentence pairs that swap synonyms; non-paraphrases also change the object.",
    ),
    classification(
        "order_paraphrase", "paraphrase", _ORDER_TEMPLATES, _order_example, 2200, OPTIONS,
        "Pairs of people going somewhere; paraphrases only swap the order of the names.",
    ),
)
