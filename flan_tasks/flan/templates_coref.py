"""Templates for coreference (DPR, Winogrande, SuperGLUE WSC for training, WSC273 for evaluation).

Fields: DPR sentence / pronoun (options: the two candidates); Winogrande sentence / context (the
text before the blank; options: each filler plus the rest of the sentence); WSC text / noun /
pronoun (options no / yes); WSC273 text / context / pronoun (options like Winogrande's).
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

DPR = (
    t("{sentence}\n\nWho or what does \"{pronoun}\" refer to in the sentence above?" + OPTS),
    t("In the sentence \"{sentence}\", what is \"{pronoun}\"?" + OPTS),
    t("Resolve the pronoun.\n\nSentence: {sentence}\nPronoun: {pronoun}" + OPTS),
    t("{sentence}\n\nHere, the word \"{pronoun}\" stands for" + OPTS),
    t("Read the sentence and find what \"{pronoun}\" points to.\n\n{sentence}" + OPTS),
    t("Which candidate is meant by \"{pronoun}\"?\n\n{sentence}" + OPTS),
    t("Sentence: {sentence}\n\nIn this sentence, \"{pronoun}\" refers to whom or what?" + OPTS),
    t("Who is \"{pronoun}\" in the following?\n{sentence}" + OPTS),
    t("{sentence}\n\nWhat is the antecedent of \"{pronoun}\"?" + OPTS),
    turned("Write a sentence in which the pronoun \"{pronoun}\" refers to {answer}.", "{sentence}"),
)

WINOGRANDE = (
    t("How does this sentence end?\n\n{context}" + OPTS),
    t("{context}\n\nPick the continuation that makes the most sense." + OPTS),
    t("Fill in the rest of the sentence.\n\n{context} ..." + OPTS),
    t("Which ending fits best?\n\n{context}" + OPTS),
    t("Complete the sentence using common sense: {context}" + OPTS),
    t("{context}\n\nWhat comes next?" + OPTS),
    t("Choose the correct way to finish the sentence below.\n{context}" + OPTS),
    t("Read the start of a sentence and select its ending.\n\nStart: {context}" + OPTS),
    turned("Write the beginning of a sentence that could end like this: {answer}", "{context}"),
    turned("Sentence ending: {answer}\n\nWhat came before it?", "{context}"),
)

WSC = (
    t("{text}\n\nIn the passage above, does \"{pronoun}\" refer to {noun}?" + OPTS),
    t("Read the sentence: {text}\n\nIs \"{pronoun}\" the same entity as \"{noun}\"?" + OPTS),
    t("{text}\n\nQuestion: when the text says \"{pronoun}\", does it mean {noun}?" + OPTS),
    t("Coreference check.\nText: {text}\nPronoun: {pronoun}\nCandidate: {noun}\n\nDo they refer to the same "
      "thing?" + OPTS),
    t("In \"{text}\", is {noun} what the word \"{pronoun}\" points to?" + OPTS),
    t("{text}\n\nCan we replace \"{pronoun}\" with \"{noun}\" without changing the meaning?" + OPTS),
    t("Here is a sentence: {text}\n\nDoes the pronoun \"{pronoun}\" stand for {noun}?" + OPTS),
    t("Decide whether \"{pronoun}\" and \"{noun}\" corefer.\n\n{text}" + OPTS),
    t("{text}\n\nIs it correct to read \"{pronoun}\" as referring to {noun}?" + OPTS),
    turned("{text}\n\nName something in the text that \"{pronoun}\" could refer to. Is that the right reading? "
           "{answer}", "{noun}"),
)

WSC273 = (
    t("{context} ..." + OPTS),
    t("How does this sentence continue?\n\n{context}" + OPTS),
    t("Pick the ending that correctly resolves the pronoun \"{pronoun}\".\n\n{context}" + OPTS),
    t("{context}\n\nWhich continuation makes sense?" + OPTS),
    t("Complete the sentence.\n{context}" + OPTS),
    t("Read the start of the sentence and choose the sensible ending.\n\n{context}" + OPTS),
    t("The full sentence is \"{text}\". Which option says who \"{pronoun}\" is?" + OPTS),
    t("Use common sense to finish the sentence: {context}" + OPTS),
    t("{context}\n\nWhat comes next?" + OPTS),
    t("Sentence start: {context}\n\nSelect the correct ending." + OPTS),
)
