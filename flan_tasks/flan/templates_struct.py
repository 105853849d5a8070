"""Templates for struct-to-text (CommonGen, DART, E2E NLG, WebNLG).

Fields: CommonGen concepts (comma-separated); DART triples (one "- subject predicate object"
line each); E2E attributes (the meaning representation, e.g. "name[Aromi], food[Chinese]");
WebNLG triples ("- subject | predicate | object" lines) and category. The target is `answer`.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import t, turned

COMMON_GEN = (
    t("Write a sentence that uses all of these words: {concepts}"),
    t("Concepts: {concepts}\n\nMake an everyday sentence containing them."),
    t("Create a short sentence about a common scene that mentions {concepts}."),
    t("Here are some words: {concepts}. Put them together in one natural sentence."),
    t("{concepts}\n\nCombine the words above into a sentence."),
    t("Generate a sentence that includes each of the following: {concepts}"),
    t("Use the words {concepts} to describe something that could really happen."),
    t("Keywords: {concepts}\nSentence:"),
    turned("What are the key concepts in this sentence?\n\n{answer}", "{concepts}"),
    turned("{answer}\n\nList the main nouns and verbs of this sentence, separated by commas.", "{concepts}"),
)

DART = (
    t("Facts:\n{triples}\n\nWrite a sentence that states these facts."),
    t("Turn this data into a fluent sentence.\n\n{triples}"),
    t("{triples}\n\nDescribe the information above in plain English."),
    t("Here are some subject-relation-object triples:\n{triples}\n\nExpress them as text."),
    t("Write one or two sentences that convey all of these facts:\n{triples}"),
    t("Data:\n{triples}\n\nSentence:"),
    t("Convert the structured data below into a readable description.\n\n{triples}"),
    t("{triples}\n\nSay this in a sentence."),
    turned("Sentence: {answer}\n\nExtract the facts in it as subject, relation, object triples.", "{triples}"),
    turned("List the facts stated in the following text, one per line.\n\n{answer}", "{triples}"),
)

E2E_NLG = (
    t("Restaurant data: {attributes}\n\nWrite a sentence describing this restaurant."),
    t("{attributes}\n\nTurn these attributes into a short description."),
    t("Describe the place using all of the following information: {attributes}"),
    t("Here is information about a restaurant: {attributes}. Write a review-style sentence with it."),
    t("Attributes: {attributes}\nDescription:"),
    t("Write a sentence that a restaurant guide might print, based on: {attributes}"),
    t("Generate a natural-language description from this data.\n\n{attributes}"),
    t("{attributes}\n\nWhat would you say about this restaurant?"),
    turned("Sentence: {answer}\n\nWrite the restaurant's attributes in the form key[value], separated by commas.",
           "{attributes}"),
    turned("{answer}\n\nExtract the structured data about the restaurant from this text.", "{attributes}"),
)

WEB_NLG = (
    t("Triples:\n{triples}\n\nWrite a text that expresses these facts."),
    t("Category: {category}\n{triples}\n\nDescribe this data in one or two sentences."),
    t("{triples}\n\nVerbalize the triples above."),
    t("Here are some facts about a {category} entity:\n{triples}\n\nWrite them up as a short paragraph."),
    t("Generate fluent English from this knowledge-graph data.\n\n{triples}"),
    t("Data:\n{triples}\n\nText:"),
    t("Write a sentence containing all the information below.\n\n{triples}"),
    t("{triples}\n\nTell me about this in plain language."),
    turned("Text: {answer}\n\nWrite the facts it contains as subject | predicate | object lines.", "{triples}"),
    turned("{answer}\n\nWhat category of thing is this text mainly about?", "{category}"),
)
