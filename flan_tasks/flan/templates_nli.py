"""Templates for the natural language inference cluster (ANLI, CB, MNLI, QNLI, RTE, SNLI, WNLI).

Fields come from flan_tasks.flan.processors: premise / hypothesis (ANLI, CB, MNLI, RTE, SNLI),
question / sentence (QNLI), sentence1 / sentence2 (WNLI), plus answer and options.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

ANLI = (
    t("{premise}\n\nGiven the passage above, can we say that the following is true?\n{hypothesis}" + OPTS),
    t("Read the text and decide whether the claim after it holds.\n\nText: {premise}\n\nClaim: {hypothesis}" + OPTS),
    t("Here is a short passage:\n{premise}\n\nDoes the passage support the statement \"{hypothesis}\"?" + OPTS),
    t("{premise}\n\nIf everything above is accurate, must it also be the case that \"{hypothesis}\"?" + OPTS),
    t("Consider this background information.\n\n{premise}\n\nQuestion: is \"{hypothesis}\" a valid conclusion?" + OPTS),
    t("Passage:\n{premise}\n\nStatement:\n{hypothesis}\n\nIs the statement backed up by the passage?" + OPTS),
    t("Decide whether the hypothesis follows from the context.\nContext: {premise}\nHypothesis: {hypothesis}" + OPTS),
    t("{premise}\n\nWould a careful reader of this text agree with this: \"{hypothesis}\"" + OPTS),
    turned(
        "Read the passage below and write one sentence about it. When asked whether the passage "
        "supports your sentence, the answer should be \"{answer}\".\n\n{premise}",
        "{hypothesis}",
    ),
    turned(
        "Context: {premise}\n\nAnswer to \"does the context support it?\": {answer}\n\n"
        "Write a claim that fits this answer.",
        "{hypothesis}",
    ),
)

CB = (
    t("{premise}\n\nFrom what is said above, does it follow that \"{hypothesis}\"?" + OPTS),
    t("Read the dialogue or passage and judge the statement.\n\n{premise}\n\nStatement: {hypothesis}" + OPTS),
    t("Text:\n{premise}\n\nIs the speaker committed to the claim that {hypothesis}" + OPTS),
    t("{premise}\n\nBased only on the text, is the following true? {hypothesis}" + OPTS),
    t("Here is some text: {premise}\n\nCan we conclude \"{hypothesis}\" from it?" + OPTS),
    t("Premise: {premise}\nHypothesis: {hypothesis}\n\nDoes the premise entail the hypothesis?" + OPTS),
    t("{premise}\n\nQuestion: given this, would you say that \"{hypothesis}\" holds?" + OPTS),
    t("Read and answer.\n\n{premise}\n\nWhat does the text tell us about whether {hypothesis}" + OPTS),
    turned(
        "Write a statement about the text below for which the question \"does the text imply it?\" "
        "has the answer \"{answer}\".\n\n{premise}",
        "{hypothesis}",
    ),
    turned("{premise}\n\nGenerate a hypothesis whose relation to this passage is: {answer}", "{hypothesis}"),
)

MNLI = (
    t("Premise: {premise}\n\nHypothesis: {hypothesis}\n\nDoes the premise imply the hypothesis?" + OPTS),
    t("{premise}\n\nIf the sentence above is true, is this one true as well?\n{hypothesis}" + OPTS),
    t("Sentence one: \"{premise}\"\nSentence two: \"{hypothesis}\"\n\nDoes sentence one lead to sentence two?" + OPTS),
    t("Assume the following is correct: {premise}\n\nThen is it also correct that {hypothesis}" + OPTS),
    t("Here are two statements.\n{premise}\n{hypothesis}\n\nIs the second one a consequence of the first?" + OPTS),
    t("{premise}\n\nBased on that, can we infer \"{hypothesis}\"?" + OPTS),
    t("Judge whether the second sentence follows from the first.\n\n1. {premise}\n2. {hypothesis}" + OPTS),
    turned(
        "Here is a sentence: {premise}\n\nWrite another sentence so that the answer to \"does the "
        "first sentence imply the second?\" is \"{answer}\".",
        "{hypothesis}",
    ),
    turned(
        "Given the statement \"{premise}\", produce a second statement. Relation between them: {answer}.",
        "{hypothesis}",
    ),
    turned("Write a premise that a reader could use to answer \"{answer}\" about this claim: {hypothesis}", "{premise}"),
)

SNLI = (
    t("{premise}\n\nDoes this description of a scene mean that \"{hypothesis}\"?" + OPTS),
    t("Picture description: {premise}\nClaim about the picture: {hypothesis}\n\nIs the claim true?" + OPTS),
    t("Premise: \"{premise}\"\nHypothesis: \"{hypothesis}\"\n\nCan the hypothesis be concluded from the premise?" + OPTS),
    t("If \"{premise}\" is a caption of a photo, is \"{hypothesis}\" also an accurate caption?" + OPTS),
    t("{premise}\n\nGiven the sentence above, is it true that {hypothesis}" + OPTS),
    t("Someone describes a photo: {premise}\n\nWould it be right to say: {hypothesis}" + OPTS),
    t("Test of inference.\nFirst sentence: {premise}\nSecond sentence: {hypothesis}\nDoes the first support the second?" + OPTS),
    turned(
        "Describe the same scene as \"{premise}\" in one new sentence, such that the answer to "
        "\"does the first description imply yours?\" is \"{answer}\".",
        "{hypothesis}",
    ),
    turned("Caption: {premise}\n\nWrite a sentence whose relation to this caption is \"{answer}\".", "{hypothesis}"),
    turned(
        "A second sentence is \"{hypothesis}\" and the answer to whether it follows is \"{answer}\". "
        "Write a first sentence that could describe the same photo.",
        "{premise}",
    ),
)

QNLI = (
    t("Question: {question}\n\nDoes the sentence \"{sentence}\" answer this question?" + OPTS),
    t("{sentence}\n\nDoes the sentence above contain the answer to \"{question}\"?" + OPTS),
    t("Can the question \"{question}\" be answered using this sentence?\n\n{sentence}" + OPTS),
    t("Here is a question and a sentence.\n\nQ: {question}\nS: {sentence}\n\nIs the answer found in the sentence?" + OPTS),
    t("{question}\n\nWould this sentence be a good source for the answer? {sentence}" + OPTS),
    t("Is the following sentence relevant enough to answer the question \"{question}\"?\n{sentence}" + OPTS),
    t("Sentence: {sentence}\nQuestion: {question}\n\nDoes the sentence respond to the question?" + OPTS),
    t("Does the passage below answer the question?\n\nQuestion: {question}\nPassage: {sentence}" + OPTS),
    turned(
        "Sentence: {sentence}\n\nWrite a question. Asked whether the sentence answers your question, "
        "a reader should say \"{answer}\".",
        "{question}",
    ),
    turned("Here is a question: {question}\n\nWrite a sentence; does it answer the question? {answer}", "{sentence}"),
)

RTE = (
    t("{premise}\n\nDoes this text mean that \"{hypothesis}\"?" + OPTS),
    t("Read the following and determine if the final sentence is true.\n\n{premise}\n\nSentence: {hypothesis}" + OPTS),
    t("Text: {premise}\n\nHypothesis: {hypothesis}\n\nIs the hypothesis entailed by the text?" + OPTS),
    t("{premise}\n\nAccording to this passage, is it true that {hypothesis}" + OPTS),
    t("Given the paragraph \"{premise}\", can we say \"{hypothesis}\"?" + OPTS),
    t("Check whether the claim is supported.\n\nSource: {premise}\nClaim: {hypothesis}" + OPTS),
    t("{premise}\n\nIs the statement \"{hypothesis}\" a fair summary of a fact stated above?" + OPTS),
    t("Evidence: {premise}\n\nDoes the evidence confirm that {hypothesis}" + OPTS),
    turned(
        "{premise}\n\nWrite a sentence for which the question \"does the passage entail it?\" "
        "has the answer \"{answer}\".",
        "{hypothesis}",
    ),
    turned("Source text: {premise}\nDesired answer: {answer}\n\nWrite a claim that gets that answer.", "{hypothesis}"),
)

WNLI = (
    t("{sentence1}\n\nIs it right to conclude that \"{sentence2}\"?" + OPTS),
    t("Sentence A: {sentence1}\nSentence B: {sentence2}\n\nDoes A imply B?" + OPTS),
    t("Read this: {sentence1}\n\nIn this reading, is it true that {sentence2}" + OPTS),
    t("{sentence1}\n\nThe pronoun has been replaced below. Is this version correct?\n{sentence2}" + OPTS),
    t("Given \"{sentence1}\", does \"{sentence2}\" follow?" + OPTS),
    t("Decide if the second sentence is supported by the first one.\n\n{sentence1}\n{sentence2}" + OPTS),
    t("Here is a sentence with an ambiguous pronoun: {sentence1}\n\nIs this interpretation right? {sentence2}" + OPTS),
    t("{sentence1}\n\nAfter reading this, would you agree with the following? {sentence2}" + OPTS),
    turned(
        "{sentence1}\n\nRewrite this sentence so that the pronoun is resolved; the answer to \"is "
        "your version implied by the original?\" should be \"{answer}\".",
        "{sentence2}",
    ),
    turned(
        "Here is a sentence: {sentence2}\n\nWrite a longer sentence with a pronoun that this one "
        "tries to interpret. Is the interpretation right? {answer}",
        "{sentence1}",
    ),
)
