"""Templates for paraphrase detection (MRPC, QQP, PAWS, STS-B).

Fields: sentence1 / sentence2 (MRPC, PAWS, STS-B), question1 / question2 (QQP); options are
no / yes, or "0".."5" for STS-B.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

MRPC = (
    t("First sentence: {sentence1}\nSecond sentence: {sentence2}\n\nDo they say the same thing?" + OPTS),
    t("{sentence1}\n{sentence2}\n\nAre these two sentences paraphrases of each other?" + OPTS),
    t("Is the meaning of \"{sentence1}\" equivalent to that of \"{sentence2}\"?" + OPTS),
    t("Here are two sentences from news stories.\n\n1. {sentence1}\n2. {sentence2}\n\nDo they convey the same "
      "information?" + OPTS),
    t("{sentence1}\n\nDoes the following sentence restate the one above? {sentence2}" + OPTS),
    t("Decide whether the two sentences are semantically equivalent.\n\nA: {sentence1}\nB: {sentence2}" + OPTS),
    t("Sentence one says \"{sentence1}\" and sentence two says \"{sentence2}\". Same meaning?" + OPTS),
    t("Compare these sentences:\n{sentence1}\n{sentence2}\n\nIs one a rewording of the other?" + OPTS),
    turned("Here is a sentence: {sentence1}\n\nWrite another sentence. Same meaning as the first? {answer}", "{sentence2}"),
    turned(
        "Rewrite the sentence below; the answer to \"do both mean the same?\" should be \"{answer}\".\n\n{sentence1}",
        "{sentence2}",
    ),
)

QQP = (
    t("Question 1: {question1}\nQuestion 2: {question2}\n\nAre these asking the same thing?" + OPTS),
    t("{question1}\n{question2}\n\nWould these two questions have the same answer?" + OPTS),
    t("Is \"{question1}\" a duplicate of \"{question2}\"?" + OPTS),
    t("Two users posted these questions on a Q&A site.\n\n- {question1}\n- {question2}\n\nShould they be merged as "
      "duplicates?" + OPTS),
    t("{question1}\n\nIs the following question the same as the one above? {question2}" + OPTS),
    t("Do the questions below mean the same?\n\nA: {question1}\nB: {question2}" + OPTS),
    t("Here are two questions: \"{question1}\" and \"{question2}\". Same intent?" + OPTS),
    turned("Write a question related to this one: {question1}\nShould the two count as duplicates? {answer}",
           "{question2}"),
    turned("Here is a question: {question2}\n\nWrite another one. Would the two be marked as duplicates? {answer}",
           "{question1}"),
    turned("Question: {question1}\nDuplicate: {answer}\n\nWrite a second question that fits.", "{question2}"),
)

PAWS = (
    t("Sentence 1: {sentence1}\nSentence 2: {sentence2}\n\nDo these sentences mean the same thing?" + OPTS),
    t("{sentence1}\n{sentence2}\n\nIs the second sentence a paraphrase of the first?" + OPTS),
    t("Do \"{sentence1}\" and \"{sentence2}\" express the same facts?" + OPTS),
    t("The words in these two sentences overlap a lot. Is their meaning also identical?\n\n1. {sentence1}\n2. "
      "{sentence2}" + OPTS),
    t("{sentence1}\n\nDoes this other sentence mean exactly the same? {sentence2}" + OPTS),
    t("Check whether the reordering changed the meaning.\n\nOriginal: {sentence1}\nRewritten: {sentence2}" + OPTS),
    t("Same meaning or not?\n\n{sentence1}\n\n{sentence2}" + OPTS),
    t("Are the following sentences paraphrases?\nA: {sentence1}\nB: {sentence2}" + OPTS),
    turned("{sentence1}\n\nShuffle the words of this sentence into a new one. Same meaning? {answer}", "{sentence2}"),
    turned("Write a sentence; asked whether it means the same as \"{sentence1}\", a reader says {answer}.",
           "{sentence2}"),
)

STSB = (
    t("{sentence1}\n{sentence2}\n\nOn a scale from 0 (unrelated) to 5 (same meaning), how similar are these two "
      "sentences?" + OPTS),
    t("Rate the similarity of the two sentences, 0 meaning nothing in common and 5 meaning equivalent.\n\nA: "
      "{sentence1}\nB: {sentence2}" + OPTS),
    t("Sentence one: {sentence1}\nSentence two: {sentence2}\n\nHow close are they in meaning, from 0 to 5?" + OPTS),
    t("How much do \"{sentence1}\" and \"{sentence2}\" overlap in meaning? Answer with a score from 0 to 5." + OPTS),
    t("Give a semantic similarity score (0-5):\n{sentence1}\n{sentence2}" + OPTS),
    t("{sentence1}\n\nOn a 0-5 scale, how similar is the sentence below to the one above?\n{sentence2}" + OPTS),
    t("Compare the meaning of these sentences and grade it from 0 (different) to 5 (identical).\n\n- "
      "{sentence1}\n- {sentence2}" + OPTS),
    t("Similarity check. First: {sentence1} Second: {sentence2} Score (0-5)?" + OPTS),
    turned("Write a sentence whose similarity to \"{sentence1}\" is {answer} on a 0-5 scale.", "{sentence2}"),
    turned("Similarity target: {answer} out of 5.\nReference sentence: {sentence2}\n\nWrite a sentence that "
           "matches the target.", "{sentence1}"),
)
