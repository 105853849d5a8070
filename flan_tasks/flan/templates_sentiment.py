"""Templates for sentiment (IMDB, Sentiment140, SST-2, Yelp); options are negative / positive.

Fields: text (IMDB, Sentiment140, Yelp), sentence (SST-2); `answer`, `options`.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

IMDB = (
    t("{text}\n\nIs this movie review positive or negative?" + OPTS),
    t("Here is a film review:\n{text}\n\nHow does the reviewer feel about the movie?" + OPTS),
    t("What is the sentiment of this review?\n\n{text}" + OPTS),
    t("{text}\n\nDid the author of this review like the film?" + OPTS),
    t("Review: {text}\n\nClassify the tone of the review." + OPTS),
    t("Read the movie review and tell me whether the opinion is favourable.\n\n{text}" + OPTS),
    t("{text}\n\nOverall, the writer's view of the movie is" + OPTS),
    turned("Write a {answer} review of a movie.", "{text}"),
    turned("Compose a film review with a {answer} tone; a few sentences are enough.", "{text}"),
    turned("Pretend you just watched a movie and your impression was {answer}. Describe it.", "{text}"),
)

SENTIMENT140 = (
    t("{text}\n\nWhat mood does this tweet express?" + OPTS),
    t("Tweet: {text}\n\nIs the feeling behind it positive or negative?" + OPTS),
    t("How would you describe the sentiment of this tweet?\n\n{text}" + OPTS),
    t("{text}\n\nWas the person who posted this happy or unhappy?" + OPTS),
    t("Classify the tweet's sentiment.\n\n\"{text}\"" + OPTS),
    t("Someone posted: {text}\n\nWhat is their attitude?" + OPTS),
    t("{text}\n\nSentiment of the message above:" + OPTS),
    turned("Write a {answer} tweet.", "{text}"),
    turned("Post something on social media that sounds {answer}.", "{text}"),
    turned("Sentiment: {answer}\n\nWrite a short tweet with this sentiment.", "{text}"),
)

SST2 = (
    t("{sentence}\n\nIs the sentence above from a positive or a negative review?" + OPTS),
    t("Movie review excerpt: \"{sentence}\"\n\nWhat is its sentiment?" + OPTS),
    t("Classify the sentiment of this phrase: {sentence}" + OPTS),
    t("{sentence}\n\nDid the critic who wrote this enjoy the film?" + OPTS),
    t("Here is a snippet from a film review. {sentence}\n\nHow does it sound?" + OPTS),
    t("Decide whether this fragment of a review is favourable.\n\n{sentence}" + OPTS),
    t("\"{sentence}\"\n\nThe tone of this review is" + OPTS),
    turned("Write a {answer} phrase that could appear in a movie review.", "{sentence}"),
    turned("Give me a short {answer} comment about a film.", "{sentence}"),
    turned("Sentiment: {answer}\n\nWrite one line of a film review with this sentiment.", "{sentence}"),
)

YELP = (
    t("{text}\n\nIs this business review positive or negative?" + OPTS),
    t("Here is a Yelp review:\n{text}\n\nDid the customer have a good experience?" + OPTS),
    t("What is the sentiment of this review?\n\n{text}" + OPTS),
    t("{text}\n\nHow would you rate the reviewer's opinion of the place?" + OPTS),
    t("Customer review: {text}\n\nClassify its tone." + OPTS),
    t("Read this restaurant or shop review and say if it is favourable.\n\n{text}" + OPTS),
    t("{text}\n\nThe overall feeling of this review is" + OPTS),
    turned("Write a {answer} Yelp review.", "{text}"),
    turned("Write a customer review of a local business. The review should be {answer}.", "{text}"),
    turned("Sentiment: {answer}\n\nDescribe a visit to a restaurant in a review with this sentiment.", "{text}"),
)
