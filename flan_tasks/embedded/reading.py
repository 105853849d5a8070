"""Reading comprehension over short generated passages (extractive QA and yes/no questions).

Passages state facts from the shared country fact base, so training on reading comprehension
also teaches what closed-book QA later asks without a passage.
"""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import TA, T, classification, generation


def _passage(rng: random.Random) -> dict:
    country, capital, flag = rng.choice(lx.COUNTRIES)
    return {
        "name": rng.choice(lx.NAMES),
        "country": country,
        "capital": capital,
        "flag": flag,
        "color": rng.choice(lx.COLORS),
        "object": rng.choice(lx.OBJECTS),
        "place": rng.choice(lx.PLACES),
    }


def _text(p: dict) -> str:
    return (
        f"{p['name']} lives in {p['capital']}, the capital of {p['country']}, whose flag is {p['flag']}. "
        f"{p['name']} works at the {p['place']} and has a {p['color']} {p['object']}."
    )


def _qa_example(rng: random.Random) -> dict:
    p = _passage(rng)
    question, answer = rng.choice(
        [
            (f"Where does {p['name']} work?", f"the {p['place']}"),
            (f"What color is {p['name']}'s {p['object']}?", p["color"]),
            (f"What is the capital of {p['country']}?", p["capital"]),
            (f"What color is the flag of {p['country']}?", p["flag"]),
            (f"In which city does {p['name']} live?", p["capital"]),
        ]
    )
    return {"passage": _text(p), "question": question, "answer": answer}


def _bool_example(rng: random.Random) -> dict:
    p = _passage(rng)
    label = rng.randrange(2)
    color = p["color"] if label else rng.choice([c for c in lx.COLORS if c != p["color"]])
    place = p["place"] if label else rng.choice([x for x in lx.PLACES if x != p["place"]])
    question = rng.choice(
        [f"Does {p['name']} have a {color} {p['object']}?", f"Does {p['name']} work at the {place}?"]
    )
    return {"passage": _text(p), "question": question, "label": label}


_QA_TEMPLATES = (
    T("{passage}\n\nQuestion: {question}", "{answer}"),
    T("Read the text and answer.\n{passage}\n{question}", "{answer}"),
    T("Passage: {passage}\nQ: {question}\nA:", "{answer}"),
    T("{passage}\nAnswer using the passage: {question}", "{answer}"),
    T("Context: {passage}\n{question}", "{answer}"),
    T("{question}\nFind the answer here: {passage}", "{answer}"),
    T("Text: {passage}\nQuestion: {question}\nShort answer:", "{answer}"),
    T("Based on this: {passage}\n{question}", "{answer}"),
    TA("{passage}\n\nWrite a question about this text whose answer is \"{answer}\".", "{question}"),
    TA("Answer: {answer}\nText: {passage}\nWhat was the question?", "{question}"),
)

_BOOL_TEMPLATES = (
    T("{passage}\n\n{question}\n\n{options_}", "{answer}"),
    T("Passage: {passage}\nQuestion: {question}\n\n{options_}", "{answer}"),
    T("Read: {passage}\nAnswer yes or no: {question}\n\n{options_}", "{answer}"),
    T("{passage}\nBased on the text, {question}\n\n{options_}", "{answer}"),
    T("Text: {passage}\nIs the answer to \"{question}\" yes?\n\n{options_}", "{answer}"),
    T("{question}\nUse this passage: {passage}\n\n{options_}", "{answer}"),
    T("Context: {passage}\nQ: {question}\n\n{options_}", "{answer}"),
    T("According to the passage below, {question}\n{passage}\n\n{options_}", "{answer}"),
    T("{passage}\nTrue or false, in yes/no form: {question}\n\n{options_}", "{answer}"),
    TA("{passage}\nWrite a yes/no question about this text whose answer is {answer}.", "{question}"),
)

SPECS = (
    generation(
        "passage_qa", "reading_comprehension", _QA_TEMPLATES, _qa_example, 3800, ("squad",),
        "Extractive questions over two-sentence passages.",
    ),
    classification(
        "passage_boolq", "reading_comprehension", _BOOL_TEMPLATES, _bool_example, 2600, ("no", "yes"),
        "Yes/no questions over two-sentence passages.",
    ),
)
