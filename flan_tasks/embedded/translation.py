"""Translation between English and Zolan, an invented language translated word by word."""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import TA, T, generation

METRICS = ("bleu",)


def _to_zolan(english: str) -> str:
    return " ".join(lx.ZOLAN[w] for w in english.split())


def _sentence(rng: random.Random) -> str:
    subject = f"the {rng.choice(lx.ZOLAN_ADJECTIVES)} {rng.choice(lx.ZOLAN_NOUNS)}"
    obj = rng.choice(("the", "a")) + " " + rng.choice(lx.ZOLAN_NOUNS)
    return f"{subject} {rng.choice(lx.ZOLAN_VERBS)} {obj}"


def _en_example(rng: random.Random) -> dict:
    english = _sentence(rng)
    return {"english": english, "zolan": _to_zolan(english), "answer": _to_zolan(english)}


def _zo_example(rng: random.Random) -> dict:
    # Adjective on the object instead of the subject, so the two directions differ in form.
    noun, verb, adj, obj = (rng.choice(x) for x in (lx.ZOLAN_NOUNS, lx.ZOLAN_VERBS, lx.ZOLAN_ADJECTIVES, lx.ZOLAN_NOUNS))
    english = f"the {noun} {verb} a {adj} {obj}"
    return {"english": english, "zolan": _to_zolan(english), "answer": english}


_EN_TEMPLATES = (
    T("Translate to Zolan: {english}", "{zolan}"),
    T("{english}\n\nHow do you say this in Zolan?", "{zolan}"),
    T("English: {english}\nZolan:", "{zolan}"),
    T("Say \"{english}\" in Zolan.", "{zolan}"),
    T("Write this sentence in Zolan: {english}", "{zolan}"),
    T("Translate from English into Zolan.\n{english}", "{zolan}"),
    T("What is the Zolan for \"{english}\"?", "{zolan}"),
    T("{english}\nZolan translation:", "{zolan}"),
    T("Render in Zolan: {english}", "{zolan}"),
    TA("Translate to English: {zolan}", "{english}"),
)

_ZO_TEMPLATES = (
    T("Translate to English: {zolan}", "{english}"),
    T("{zolan}\n\nWhat does this Zolan sentence mean in English?", "{english}"),
    T("Zolan: {zolan}\nEnglish:", "{english}"),
    T("Say \"{zolan}\" in English.", "{english}"),
    T("Give the English for this Zolan text: {zolan}", "{english}"),
    T("Translate from Zolan into English.\n{zolan}", "{english}"),
    T("What is \"{zolan}\" in English?", "{english}"),
    T("{zolan}\nEnglish translation:", "{english}"),
    T("Turn this Zolan into English: {zolan}", "{english}"),
    TA("Translate to Zolan: {english}", "{zolan}"),
)

SPECS = (
    generation(
        "en_to_zolan", "translation", _EN_TEMPLATES, _en_example, 4500, METRICS,
        "Short English sentences translated word by word into Zolan.",
    ),
    generation(
        "zolan_to_en", "translation", _ZO_TEMPLATES, _zo_example, 2800, METRICS,
        "Zolan sentences translated back into English.",
    ),
)
