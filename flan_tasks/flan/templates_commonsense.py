"""Templates for commonsense reasoning (COPA, HellaSwag, PIQA, StoryCloze).

Fields: COPA premise / premise_clause (no final period) / relation (cause | effect) / connective
(because | so) / relation_question; HellaSwag activity / context; PIQA goal; StoryCloze context.
`options` are the record's own choices.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

COPA = (
    t("{premise} {relation_question}" + OPTS),
    t("Premise: {premise}\n\nWhich option is the more likely {relation}?" + OPTS),
    t("Complete the sentence with the most plausible ending.\n\n{premise_clause}, {connective}..." + OPTS),
    t("Here is a situation: {premise}\n\nWhat is the most plausible {relation} of it?" + OPTS),
    t("{premise}\n\nPick the alternative that is more likely to be the {relation}." + OPTS),
    t("Consider the statement \"{premise}\". {relation_question}" + OPTS),
    t("Choose the {relation} that makes the most sense.\n\n{premise}" + OPTS),
    t("{premise_clause}, {connective} what?" + OPTS),
    turned("Write a sentence describing the {relation} of the following event: {answer}", "{premise}"),
    turned("{answer}\n\nWhat event could this be the {relation} of? Describe it in one sentence.", "{premise}"),
)

HELLASWAG = (
    t("{context}\n\nHow does this continue?" + OPTS),
    t("Activity: {activity}\n\n{context}..." + OPTS),
    t("Pick the most natural continuation of the text.\n\n{context}" + OPTS),
    t("What happens next?\n\n{context}" + OPTS),
    t("This describes someone doing \"{activity}\". {context}\n\nChoose the ending that makes sense." + OPTS),
    t("{context}\n\nWhich sentence most likely comes next?" + OPTS),
    t("Finish the description.\n{context}" + OPTS),
    t("Topic: {activity}\n\nContinue: {context}" + OPTS),
    turned("Write the beginning of a description about {activity} that could end with: {answer}", "{context}"),
    turned("{answer}\n\nWhat could have come just before this sentence? Topic: {activity}.", "{context}"),
)

PIQA = (
    t("Goal: {goal}\n\nWhich way of doing it makes more sense?" + OPTS),
    t("{goal}\n\nPick the better solution." + OPTS),
    t("How would you do this: {goal}" + OPTS),
    t("Here is a goal: {goal}\n\nHow would you achieve it?" + OPTS),
    t("Use common sense about the physical world. What is the right way to {goal}" + OPTS),
    t("Question: {goal}\n\nWhich approach works?" + OPTS),
    t("Choose the method that would actually succeed.\n\n{goal}" + OPTS),
    t("{goal}\n\nOf the two ways below, which is more sensible?" + OPTS),
    turned("Here is how to do something: {answer}\n\nWhat is the goal of these instructions?", "{goal}"),
    turned("Write a practical goal that is achieved as follows: {answer}", "{goal}"),
)

STORY_CLOZE = (
    t("{context}\n\nWhat is the most fitting ending for the story?" + OPTS),
    t("Read the beginning of a story and choose its last sentence.\n\n{context}" + OPTS),
    t("Story so far: {context}\n\nHow does it end?" + OPTS),
    t("{context}\n\nPick the sentence that best finishes this short story." + OPTS),
    t("Here are four sentences of a five-sentence story:\n{context}\n\nWhat is the fifth?" + OPTS),
    t("Choose the ending that makes sense.\n\n{context}" + OPTS),
    t("{context}\n\nWhat happens next?" + OPTS),
    t("Complete the story: {context}" + OPTS),
    turned("Write the first four sentences of a short story that ends with: {answer}", "{context}"),
    turned("Last line of a story: {answer}\n\nWrite the story that leads up to it.", "{context}"),
)
