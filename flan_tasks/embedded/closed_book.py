"""Closed-book QA over the fixed country fact base (no passage given).

Reading-comprehension passages state the same facts, so a model trained with reading
comprehension has seen them even when this cluster is held out.
"""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import TA, T, classification, generation


def _capital_example(rng: random.Random) -> dict:
    country, capital, _ = rng.choice(lx.COUNTRIES)
    return {"country": country, "answer": capital}


def _flag_example(rng: random.Random) -> dict:
    country, _, flag = rng.choice(lx.COUNTRIES)
    return {"country": country, "label": lx.COLORS.index(flag)}


_CAPITAL_TEMPLATES = (
    T("What is the capital of {country}?", "{answer}"),
    T("Name the capital city of {country}.", "{answer}"),
    T("Q: Which city is the capital of {country}?\nA:", "{answer}"),
    T("The capital of {country} is", "{answer}"),
    T("Answer this question: what is {country}'s capital?", "{answer}"),
    T("{country} has its capital in which city?", "{answer}"),
    T("Trivia: capital of {country}?", "{answer}"),
    T("Which city is the seat of government of {country}?", "{answer}"),
    TA("{answer} is the capital of which country?", "{country}"),
    TA("Name the country whose capital is {answer}.", "{country}"),
)

_FLAG_TEMPLATES = (
    T("What color is the flag of {country}?\n\n{options_}", "{answer}"),
    T("The flag of {country} is which color?\n\n{options_}", "{answer}"),
    T("Q: What is the color of {country}'s flag?\n\n{options_}", "{answer}"),
    T("Trivia: {country} flag color?\n\n{options_}", "{answer}"),
    T("Pick the color of the flag of {country}.\n\n{options_}", "{answer}"),
    T("Which color does {country} use on its flag?\n\n{options_}", "{answer}"),
    T("Answer from memory: what color is {country}'s flag?\n\n{options_}", "{answer}"),
    T("{country} has a flag. What color is it?\n\n{options_}", "{answer}"),
    T("Choose the flag color of {country}.\n\n{options_}", "{answer}"),
    TA("Name a country whose flag is {answer}.", "{country}"),
)

SPECS = (
    generation(
        "capital_qa", "closed_book_qa", _CAPITAL_TEMPLATES, _capital_example, 2000, ("exact_match",),
        "Capitals of invented countries, asked without context.", dedupe=False,
    ),
    classification(
        "flag_qa", "closed_book_qa", _FLAG_TEMPLATES, _flag_example, 2100, lx.COLORS,
        "Flag colors of invented countries, asked without context.", dedupe=False,
    ),
)
