"""Sentiment: generated product and movie reviews built from small positive/negative lexicons."""

from __future__ import annotations

import random

from flan_tasks.embedded import lexicon as lx
from flan_tasks.embedded.common import TA, T, classification

OPTIONS = ("negative", "positive")


def _product_example(rng: random.Random) -> dict:
    label = rng.randrange(2)
    words = lx.POSITIVE if label else lx.NEGATIVE
    product = rng.choice(lx.PRODUCTS)
    a, b = rng.sample(words, 2)
    review = f"This {product} is {a} and {b}."
    return {"product": product, "review": review, "label": label}


def _movie_example(rng: random.Random) -> dict:
    label = rng.randrange(2)
    words = lx.POSITIVE if label else lx.NEGATIVE
    verdict = rng.choice(lx.POSITIVE_VERDICTS if label else lx.NEGATIVE_VERDICTS)
    p1, p2 = rng.sample(lx.MOVIE_PARTS, 2)
    review = f"The {p1} was {rng.choice(words)} and the {p2} was {rng.choice(words)}. {verdict}"
    return {"review": review, "label": label}


_PRODUCT_TEMPLATES = (
    T("Review: {review}\nIs this review positive or negative?\n\n{options_}", "{answer}"),
    T("{review}\n\nWhat is the sentiment of this review?\n\n{options_}", "{answer}"),
    T("How does the buyer feel about the {product}? \"{review}\"\n\n{options_}", "{answer}"),
    T("Product review: {review}\nDid the customer like it?\n\n{options_}", "{answer}"),
    T("\"{review}\"\nClassify the tone of this review.\n\n{options_}", "{answer}"),
    T("Is the following {product} review happy or unhappy?\n{review}\n\n{options_}", "{answer}"),
    T("{review} Is that a good or bad opinion?\n\n{options_}", "{answer}"),
    T("Read the review and pick its sentiment.\n{review}\n\n{options_}", "{answer}"),
    TA("Write a short {answer} review of a {product}.", "{review}"),
    TA("Give a {answer} opinion about a {product}.", "{review}"),
)

_MOVIE_TEMPLATES = (
    T("Movie review: {review}\nIs it positive or negative?\n\n{options_}", "{answer}"),
    T("{review}\n\nDid the reviewer enjoy the film?\n\n{options_}", "{answer}"),
    T("What is the sentiment of this movie review?\n{review}\n\n{options_}", "{answer}"),
    T("\"{review}\" How did the critic feel?\n\n{options_}", "{answer}"),
    T("Critic says: {review}\nSentiment?\n\n{options_}", "{answer}"),
    T("{review}\nIs this a thumbs up or thumbs down?\n\n{options_}", "{answer}"),
    T("Label the review.\n{review}\n\n{options_}", "{answer}"),
    T("Here is what someone wrote about a film: {review}\nWas it praise or complaint?\n\n{options_}", "{answer}"),
    T("Review text: {review}\nOverall tone:\n\n{options_}", "{answer}"),
    TA("Write a {answer} movie review in two sentences.", "{review}"),
)

SPECS = (
    classification(
        "product_reviews", "sentiment", _PRODUCT_TEMPLATES, _product_example, 3500, OPTIONS,
        "One-line product reviews from small positive/negative word lists.",
    ),
    classification(
        "movie_reviews", "sentiment", _MOVIE_TEMPLATES, _movie_example, 2000, OPTIONS,
        "Movie reviews with two judged aspects and a verdict.",
    ),
)
