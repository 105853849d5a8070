"""Templates for closed-book QA (ARC easy / challenge, Natural Questions open, TriviaQA).

Fields: question; `answer`; ARC also `options` (the record's own choices).
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

ARC = (
    t("{question}" + OPTS),
    t("Answer this science question.\n\n{question}" + OPTS),
    t("Question: {question}\n\nWhich of the choices is correct?" + OPTS),
    t("A grade-school science test asks: {question}\n\nPick the best answer." + OPTS),
    t("Choose the right answer to the following.\n{question}" + OPTS),
    t("{question}\n\nWhat is the answer?" + OPTS),
    t("Science quiz!\n\n{question}" + OPTS),
    t("Think about this question carefully before answering: {question}" + OPTS),
    turned("Write a science question whose correct answer is \"{answer}\".", "{question}"),
    turned("The answer is: {answer}\n\nWhat could the multiple-choice science question have been?", "{question}"),
)

NATURAL_QUESTIONS = (
    t("{question}"),
    t("Answer the following question: {question}"),
    t("Q: {question}\nA:"),
    t("Please give a short answer. {question}"),
    t("Here is a question people often search for: {question}\n\nWhat is the answer?"),
    t("Trivia time. {question}"),
    t("{question}\n\nReply with just the answer."),
    t("I have a question for you: {question}"),
    t("Question: {question}\n\nAnswer in a few words:"),
    turned("Write a question that someone might type into a search engine, whose answer is {answer}.", "{question}"),
)

TRIVIA_QA = (
    t("{question}"),
    t("Trivia question: {question}\nAnswer:"),
    t("Answer this quiz question. {question}"),
    t("Q: {question}\n\nWhat's the answer?"),
    t("Pub quiz round! {question}"),
    t("{question}\n\nGive the answer only."),
    t("Here's a general-knowledge question: {question}"),
    t("Please answer: {question}"),
    t("Test your knowledge. {question}"),
    turned("Write a trivia question whose answer is \"{answer}\".", "{question}"),
)
