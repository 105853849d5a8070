"""NLI: does a generated premise entail, contradict, or say nothing about a hypothesis?"""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import TA, T, classification

FACT_OPTIONS = ("yes", "it is not possible to tell", "no")
PLACE_OPTIONS = ("yes", "maybe", "no")


def _fact_example(rng: random.Random) -> dict:
    name, color, obj = rng.choice(lx.NAMES), rng.choice(lx.COLORS), rng.choice(lx.OBJECTS)
    label = rng.randrange(3)
    if label == 0:
        hypothesis = rng.choice([f"{name} has a {obj}.", f"{name} owns something {color}."])
    elif label == 1:
        other = rng.choice([o for o in lx.OBJECTS if o != obj])
        hypothesis = rng.choice([f"{name} has a {other}.", f"{name} likes the {rng.choice(lx.PLACES)}."])
    else:
        hypothesis = rng.choice([f"{name} has no {obj}.", f"{name} owns nothing {color}."])
    return {"premise": f"{name} has a {color} {obj}.", "hypothesis": hypothesis, "label": label}


def _place_example(rng: random.Random) -> dict:
    a, b, c = rng.sample(lx.NAMES, 3)
    place = rng.choice(lx.PLACES)
    label = rng.randrange(3)
    if label == 0:
        hypothesis = rng.choice([f"{b} is at the {place}.", f"{a} and {b} are together."])
    elif label == 1:
        hypothesis = rng.choice([f"{c} is at the {place}.", f"{a} is happy."])
    else:
        hypothesis = rng.choice([f"{a} is not at the {place}.", f"{b} is far from the {place}."])
    return {"premise": f"{a} is at the {place} with {b}.", "hypothesis": hypothesis, "label": label}


_FACT_TEMPLATES = (
    T("{premise}\n\nDoes this mean that \"{hypothesis}\"?\n\n{options_}", "{answer}"),
    T("Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the hypothesis?\n\n{options_}", "{answer}"),
    T("Read: {premise}\nCan we conclude that {hypothesis}\n\n{options_}", "{answer}"),
    T("If {premise} then is it true that {hypothesis}\n\n{options_}", "{answer}"),
    T("{premise} Based on that, is \"{hypothesis}\" true?\n\n{options_}", "{answer}"),
    T("Given \"{premise}\", does it follow that \"{hypothesis}\"?\n\n{options_}", "{answer}"),
    T("Statement: {premise}\nClaim: {hypothesis}\nIs the claim supported?\n\n{options_}", "{answer}"),
    T("{premise}\nQuestion: {hypothesis} Yes, no, or unclear?\n\n{options_}", "{answer}"),
    T("Fact: {premise}\nMust this be true: {hypothesis}\n\n{options_}", "{answer}"),
    TA("{premise}\nWrite a sentence where the answer to \"does it follow?\" is: {answer}", "{hypothesis}"),
)

_PLACE_TEMPLATES = (
    T("{premise}\n\nIs it true that {hypothesis}\n\n{options_}", "{answer}"),
    T("Premise: {premise}\nHypothesis: {hypothesis}\nIs the hypothesis entailed?\n\n{options_}", "{answer}"),
    T("Sentence one: {premise}\nSentence two: {hypothesis}\nDoes one imply two?\n\n{options_}", "{answer}"),
    T("Suppose {premise} Can we infer that {hypothesis}\n\n{options_}", "{answer}"),
    T("{premise}\nDoes that tell us \"{hypothesis}\"?\n\n{options_}", "{answer}"),
    T("Here is a fact: {premise}\nIs \"{hypothesis}\" then true?\n\n{options_}", "{answer}"),
    T("Assume: {premise}\nCheck: {hypothesis}\n\n{options_}", "{answer}"),
    T("Text: {premise}\nDoes the text support: {hypothesis}\n\n{options_}", "{answer}"),
    T("{premise} So, {hypothesis} Right?\n\n{options_}", "{answer}"),
    T("Decide if the second sentence follows.\n{premise}\n{hypothesis}\n\n{options_}", "{answer}"),
)

SPECS = (
    classification(
        "fact_nli", "nli", _FACT_TEMPLATES, _fact_example, 4000, FACT_OPTIONS,
        "Possession facts; hypotheses are entailed, unrelated, or negated.",
    ),
    classification(
        "place_nli", "nli", _PLACE_TEMPLATES, _place_example, 2500, PLACE_OPTIONS,
        "Who is where; hypotheses are entailed, unrelated, or negated.",
    ),
)
