"""Coreference: resolve a pronoun to one of two candidates (by gender, or by size)."""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import T, classification


def _gender_example(rng: random.Random) -> dict:
    she, he = rng.choice(lx.FEMALE_NAMES), rng.choice(lx.MALE_NAMES)
    pair = [she, he] if rng.random() < 0.5 else [he, she]
    target = rng.choice(pair)
    pronoun = "she" if target == she else "he"
    sentence = f"{pair[0]} met {pair[1]} at the {rng.choice(lx.PLACES)}, and {pronoun} brought a {rng.choice(lx.OBJECTS)}."
    return {"sentence": sentence, "pronoun": pronoun, "options": pair, "label": pair.index(target)}


def _size_example(rng: random.Random) -> dict:
    thing, container = rng.choice(lx.WINO_PAIRS)
    too_big = rng.random() < 0.5
    adjective = "big" if too_big else "small"
    sentence = f"The {thing} did not fit in the {container} because it was too {adjective}."
    return {"sentence": sentence, "pronoun": "it", "options": [thing, container], "label": 0 if too_big else 1}


_GENDER_TEMPLATES = (
    T("{sentence}\nWho does \"{pronoun}\" refer to?\n\n{options_}", "{answer}"),
    T("Sentence: {sentence}\nWho is \"{pronoun}\"?\n\n{options_}", "{answer}"),
    T("In \"{sentence}\", who brought something?\n\n{options_}", "{answer}"),
    T("{sentence}\nThe word \"{pronoun}\" means which person?\n\n{options_}", "{answer}"),
    T("Resolve the pronoun \"{pronoun}\": {sentence}\n\n{options_}", "{answer}"),
    T("Read: {sentence}\nWhich person does \"{pronoun}\" stand for?\n\n{options_}", "{answer}"),
    T("{sentence} Here, \"{pronoun}\" is\n\n{options_}", "{answer}"),
    T("Who is meant by \"{pronoun}\" in this sentence?\n{sentence}\n\n{options_}", "{answer}"),
    T("Pronoun question. {sentence}\n\"{pronoun}\" =\n\n{options_}", "{answer}"),
    T("Context: {sentence}\nWhich one brought a thing?\n\n{options_}", "{answer}"),
)

_SIZE_TEMPLATES = (
    T("{sentence}\nWhat does \"it\" refer to?\n\n{options_}", "{answer}"),
    T("Sentence: {sentence}\nWhat was too big or too small?\n\n{options_}", "{answer}"),
    T("In \"{sentence}\", what is \"{pronoun}\"?\n\n{options_}", "{answer}"),
    T("{sentence}\nThe pronoun \"{pronoun}\" means\n\n{options_}", "{answer}"),
    T("Resolve \"{pronoun}\" in: {sentence}\n\n{options_}", "{answer}"),
    T("Read: {sentence}\nWhich thing does \"{pronoun}\" stand for?\n\n{options_}", "{answer}"),
    T("{sentence} Here, \"{pronoun}\" is the\n\n{options_}", "{answer}"),
    T("What is meant by \"{pronoun}\" in this sentence?\n{sentence}\n\n{options_}", "{answer}"),
    T("Pronoun puzzle. {sentence}\n\"{pronoun}\" =\n\n{options_}", "{answer}"),
    T("Context: {sentence}\nWhich object is \"{pronoun}\"?\n\n{options_}", "{answer}"),
)

SPECS = (
    classification(
        "gender_pronouns", "coreference", _GENDER_TEMPLATES, _gender_example, 3200,
        description="Two people of different gender; the pronoun picks one.",
    ),
    classification(
        "size_pronouns", "coreference", _SIZE_TEMPLATES, _size_example, 2000,
        description="Winograd-style fit sentences; 'too big' means the thing, 'too small' the container.",
        dedupe=False,
    ),
)
