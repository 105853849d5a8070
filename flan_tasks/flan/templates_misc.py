"""Templates for the misc cluster (CoQA, QuAC, TREC, CoLA, WiC, linear algebra, fix punctuation).

Fields: CoQA story / questions (numbered lines); QuAC title / section / background / context /
question; TREC question (options: coarse answer types); CoLA sentence; WiC word / sentence1 /
sentence2; math question; fix_punct text (punctuation removed). The target is `answer`.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

COQA = (
    t("{story}\n\nAnswer these questions about the story, numbering your answers:\n{questions}"),
    t("Read the text and answer each question in order.\n\n{story}\n\n{questions}"),
    t("Story:\n{story}\n\nQuestions:\n{questions}\n\nAnswers:"),
    t("{questions}\n\nAnswer the numbered questions above using this passage:\n{story}"),
    t("Here is a passage followed by a conversation's worth of questions.\n\n{story}\n\n{questions}\n\nGive a "
      "short answer to each."),
    t("{story}\n\nNow answer, one line per question:\n{questions}"),
    t("Passage: {story}\n\nPlease respond to the following in order.\n{questions}"),
    t("Read carefully, then answer.\n\n{story}\n\n{questions}"),
    t("{story}\n\nQ&A time:\n{questions}"),
    turned("{story}\n\nWrite numbered questions about this text that have these answers:\n{answer}",
           "{questions}"),
)

QUAC = (
    t("{background}\n\n{context}\n\nQuestion about {title} ({section}): {question}"),
    t("Read about {title}.\n\n{context}\n\nAnswer with a quote from the text: {question}"),
    t("Section \"{section}\" of an article on {title}:\n{context}\n\n{question}"),
    t("{context}\n\nQ: {question}\nA:"),
    t("Background: {background}\n\nPassage: {context}\n\nUsing the passage, answer: {question}"),
    t("{question}\n\nFind the answer in this text about {title}:\n{context}"),
    t("Here is part of a Wikipedia article about {title}.\n\n{context}\n\nWhat does it say about the "
      "following? {question}"),
    t("{title} - {section}\n\n{context}\n\nAnswer: {question}"),
    t("Answer by copying the relevant span, or reply CANNOTANSWER.\n\n{context}\n\n{question}"),
    turned("{context}\n\nWrite a question about {title} that this text answers with: \"{answer}\"", "{question}"),
)

TREC = (
    t("What kind of answer does this question expect?\n\n{question}" + OPTS),
    t("{question}\n\nIs this question asking for a description, an entity, an abbreviation, a person, a number "
      "or a location?" + OPTS),
    t("Classify the question by the type of its answer.\n\nQuestion: {question}" + OPTS),
    t("Question: {question}\n\nThe answer to this would be a" + OPTS),
    t("{question}\n\nWhich category best describes the expected answer?" + OPTS),
    t("Here is a question: \"{question}\". What is the answer type?" + OPTS),
    t("Pick the answer type for the following question.\n{question}" + OPTS),
    t("Before answering \"{question}\", decide what sort of thing the answer is." + OPTS),
    turned("Write a question whose answer is of the type \"{answer}\".", "{question}"),
    turned("Answer type: {answer}\n\nAsk a question that needs this kind of answer.", "{question}"),
)

COLA = (
    t("Is the following sentence grammatically acceptable?\n\n{sentence}" + OPTS),
    t("{sentence}\n\nWould a linguist rate this sentence as well formed?" + OPTS),
    t("Sentence: \"{sentence}\"\n\nJudge its grammaticality." + OPTS),
    t("Check this sentence for grammar: {sentence}" + OPTS),
    t("{sentence}\n\nIs this a correct English sentence?" + OPTS),
    t("Would a native speaker find this sentence acceptable?\n{sentence}" + OPTS),
    t("Here is a sentence: {sentence}\n\nHow does its grammar sound?" + OPTS),
    t("Grammar test.\n\n{sentence}" + OPTS),
    turned("Write a sentence that is grammatically {answer}.", "{sentence}"),
    turned("Give an example of an {answer} English sentence.", "{sentence}"),
)

WIC = (
    t("{sentence1}\n{sentence2}\n\nDoes the word \"{word}\" mean the same thing in both sentences?" + OPTS),
    t("Sentence A: {sentence1}\nSentence B: {sentence2}\n\nIs \"{word}\" used with the same sense in A and B?" + OPTS),
    t("Here is a word: {word}\n\nCompare its meaning in these two sentences.\n\n1. {sentence1}\n2. {sentence2}" + OPTS),
    t("Does \"{word}\" have the same meaning in \"{sentence1}\" and in \"{sentence2}\"?" + OPTS),
    t("{sentence1}\n\n{sentence2}\n\nIn the two sentences above, the word {word} has" + OPTS),
    t("Word sense check for \"{word}\".\n- {sentence1}\n- {sentence2}" + OPTS),
    t("Decide if the word \"{word}\" carries the same meaning in both contexts.\n\n{sentence1}\n{sentence2}" + OPTS),
    t("Two sentences use the word \"{word}\":\n\n{sentence1}\n{sentence2}\n\nSame sense or not?" + OPTS),
    turned("Sentence: {sentence1}\n\nWrite another sentence using \"{word}\" so that the two have {answer}.",
           "{sentence2}"),
    turned("Use the word \"{word}\" in a new sentence. Compared with \"{sentence2}\", it should have {answer}.",
           "{sentence1}"),
)

MATH = (
    t("{question}"),
    t("Solve this equation: {question}"),
    t("Math problem: {question}\n\nAnswer:"),
    t("{question}\n\nWhat is the solution?"),
    t("Please work out the following. {question}"),
    t("Find the value of the variable. {question}"),
    t("Here is a linear equation problem: {question}"),
    t("Algebra question: {question}"),
    t("{question}\n\nGive only the final number."),
    t("Solve for the unknown.\n\n{question}"),
)

FIX_PUNCT = (
    t("{text}\n\nAdd the missing punctuation to the text above."),
    t("This sentence has lost its punctuation. Put it back.\n\n{text}"),
    t("Restore the punctuation: {text}"),
    t("Text without punctuation: {text}\n\nCorrected text:"),
    t("{text}\n\nRewrite this with proper punctuation."),
    t("Please insert commas, periods and other marks where they belong.\n\n{text}"),
    t("Fix the punctuation of the following sentence.\n{text}"),
    t("Here is some text: {text}\n\nWhat would it look like correctly punctuated?"),
    t("Make this readable by adding punctuation: {text}"),
    t("{text}\n\nSame text, with punctuation:"),
)
