"""Arithmetic: sums and differences of small whole numbers, answered as digits."""

from __future__ import annotations

import random

from flan_tasks.embedded.common import TA, T, generation

METRICS = ("exact_match",)


def _add_example(rng: random.Random) -> dict:
    a, b = rng.randrange(100), rng.randrange(100)
    return {"a": str(a), "b": str(b), "answer": str(a + b)}


def _sub_example(rng: random.Random) -> dict:
    a = rng.randrange(100)
    b = rng.randrange(a + 1)
    return {"a": str(a), "b": str(b), "answer": str(a - b)}


_ADD_TEMPLATES = (
    T("What is {a} + {b}?", "{answer}"),
    T("Add {a} and {b}.", "{answer}"),
    T("{a} plus {b} equals", "{answer}"),
    T("Compute the sum of {a} and {b}.", "{answer}"),
    T("Q: {a} + {b} = ?\nA:", "{answer}"),
    T("If you have {a} apples and get {b} more, how many do you have?", "{answer}"),
    T("Solve: {a} + {b}", "{answer}"),
    T("What do you get when you add {b} to {a}?", "{answer}"),
    T("Sum: {a}, {b}", "{answer}"),
    TA("Write an addition of two numbers that equals {answer}, starting with {a}.", "{a} + {b}"),
)

_SUB_TEMPLATES = (
    T("What is {a} - {b}?", "{answer}"),
    T("Subtract {b} from {a}.", "{answer}"),
    T("{a} minus {b} equals", "{answer}"),
    T("Compute the difference {a} - {b}.", "{answer}"),
    T("Q: {a} - {b} = ?\nA:", "{answer}"),
    T("You have {a} coins and spend {b}. How many are left?", "{answer}"),
    T("Solve: {a} - {b}", "{answer}"),
    T("Take {b} away from {a}. What remains?", "{answer}"),
    T("Difference between {a} and {b}:", "{answer}"),
    TA("Write a subtraction starting with {a} whose result is {answer}.", "{a} - {b}"),
)

SPECS = (
    generation(
        "addition", "arithmetic", _ADD_TEMPLATES, _add_example, 3000, METRICS,
        "Sums of two numbers below 100.",
    ),
    generation(
        "subtraction", "arithmetic", _SUB_TEMPLATES, _sub_example, 2400, METRICS,
        "Non-negative differences of numbers below 100.",
    ),
)
