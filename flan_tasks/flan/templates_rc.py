"""Templates for reading comprehension (BoolQ, DROP, MultiRC, OpenbookQA, SQuAD v1.1 / v2.0).

Fields: BoolQ title / passage / question; DROP passage / question; MultiRC paragraph / question /
response (the candidate answer being judged); OpenbookQA fact / question; SQuAD title / context /
question. `answer` is the gold target; `options` for the classification sets.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

BOOL_Q = (
    t("{passage}\n\nAfter reading this, answer the question: {question}" + OPTS),
    t("Article about {title}:\n{passage}\n\n{question}" + OPTS),
    t("Read the passage and say whether the answer to the question is yes or no.\n\n{passage}\n\nQ: {question}" + OPTS),
    t("{title}\n\n{passage}\n\nBased on the text above, {question}" + OPTS),
    t("Question: {question}\n\nUse this passage to answer it:\n{passage}" + OPTS),
    t("Here is some information about {title}. {passage}\n\nIs the answer to \"{question}\" yes or no?" + OPTS),
    t("{passage}\n\nTrue or false, in yes/no form: {question}" + OPTS),
    t("Text: {passage}\n\nWith the text in mind, {question}" + OPTS),
    turned("{passage}\n\nWrite a yes/no question about the passage above whose answer is \"{answer}\".", "{question}"),
    turned("Topic: {title}\n{passage}\n\nAsk something about this text that is answered with {answer}.", "{question}"),
)

DROP = (
    t("{passage}\n\nAnswer this question about the passage: {question}"),
    t("Read the text below and answer the question, which may need some counting or arithmetic.\n\n{passage}\n\n{question}"),
    t("Passage: {passage}\nQuestion: {question}\nAnswer:"),
    t("{question}\n\nFind the answer in (or compute it from) this passage:\n{passage}"),
    t("Here is a report:\n{passage}\n\nBased on the report, {question}"),
    t("Use the numbers and facts in the passage to respond.\n\n{passage}\n\nQ: {question}"),
    t("{passage}\n\nQuestion: {question}\n\nGive a short answer."),
    t("Context:\n{passage}\n\nWhat is the answer to the following? {question}"),
    t("Answer based on the article.\n\nArticle: {passage}\n\nQuestion: {question}"),
    turned("{passage}\n\nWrite a question about this passage whose answer is \"{answer}\".", "{question}"),
)

MULTIRC = (
    t("{paragraph}\n\nQuestion: \"{question}\"\n\nProposed answer: \"{response}\"\n\nIs the proposed answer correct?" + OPTS),
    t("Read the text, then decide whether the response answers the question correctly.\n\n{paragraph}\n\n"
      "Question: {question}\nResponse: {response}" + OPTS),
    t("{paragraph}\n\nSomeone was asked \"{question}\" and replied \"{response}\". Were they right?" + OPTS),
    t("Paragraph: {paragraph}\n\nBased on the paragraph, is \"{response}\" a right answer to \"{question}\"?" + OPTS),
    t("{paragraph}\n\n{question}\n\nWould \"{response}\" be an acceptable answer?" + OPTS),
    t("Check the answer against the passage.\n\nPassage: {paragraph}\nQ: {question}\nA: {response}" + OPTS),
    t("{paragraph}\n\nAfter reading the paragraph, is it accurate to answer the question \"{question}\" with "
      "\"{response}\"?" + OPTS),
    t("Question: {question}\nCandidate answer: {response}\n\nDoes the text below confirm the candidate?\n\n"
      "{paragraph}" + OPTS),
    turned(
        "{paragraph}\n\nQuestion: {question}\n\nWrite an answer to this question. Should a grader "
        "accept it? {answer}",
        "{response}",
    ),
    turned(
        "{paragraph}\n\nWrite a question about the paragraph for which \"{response}\" is an answer; "
        "is that answer correct? {answer}",
        "{question}",
    ),
)

OPENBOOKQA = (
    t("Fact: {fact}\n\nUsing this fact, answer the question: {question}" + OPTS),
    t("{fact}\n\nWith that in mind, {question}" + OPTS),
    t("Here is a science fact: {fact}\n\nWhich option best completes or answers this? {question}" + OPTS),
    t("Question: {question}\n\nHint: {fact}\n\nPick the right answer." + OPTS),
    t("Knowing that \"{fact}\", how would you answer the following?\n\n{question}" + OPTS),
    t("Read the fact and answer the question.\n\nFact: {fact}\nQuestion: {question}" + OPTS),
    t("{question}\n\nThis fact may help: {fact}" + OPTS),
    t("Science question. Keep in mind that {fact}\n\n{question}" + OPTS),
    turned("Fact: {fact}\n\nWrite a question that this fact helps answer, with \"{answer}\" as the answer.", "{question}"),
    turned("Question: {question}\nAnswer: {answer}\n\nWhat fact explains this answer?", "{fact}"),
)

SQUAD_V1 = (
    t("Read this passage about {title} and answer the question.\n\n{context}\n\n{question}"),
    t("{context}\n\nQuestion: {question}\nAnswer:"),
    t("Answer the question with a span from the text.\n\nText: {context}\n\nQuestion: {question}"),
    t("{question}\n\nThe answer can be found in this paragraph:\n{context}"),
    t("Topic: {title}\n\n{context}\n\nBased on the paragraph, {question}"),
    t("Here is an excerpt from an article on {title}:\n{context}\n\nWhat is the answer to \"{question}\"?"),
    t("Context: {context}\n\nQ: {question}\n\nA short answer, please."),
    t("{context}\n\nFrom the passage above, answer: {question}"),
    t("Please answer a question about {title}.\n\n{context}\n\n{question}"),
    turned("{context}\n\nWrite a question about this passage whose answer is \"{answer}\".", "{question}"),
)

SQUAD_V2 = (
    t("Read this passage about {title} and answer the question. If the passage does not contain the "
      "answer, say \"unanswerable\".\n\n{context}\n\n{question}"),
    t("{context}\n\nQuestion: {question}\nAnswer (or \"unanswerable\"):"),
    t("Answer the question using a span of the text, or reply unanswerable when the text cannot "
      "answer it.\n\nText: {context}\n\nQuestion: {question}"),
    t("{question}\n\nLook for the answer in the paragraph below; it may not be there.\n{context}"),
    t("Topic: {title}\n\n{context}\n\nBased on the paragraph, {question} (If there is no answer, say so "
      "by writing \"unanswerable\".)"),
    t("Here is an excerpt from an article on {title}:\n{context}\n\nWhat is the answer to \"{question}\"? "
      "Reply \"unanswerable\" if the excerpt doesn't say."),
    t("Context: {context}\n\nQ: {question}\n\nGive a short answer, or \"unanswerable\" if it cannot be "
      "answered from the context."),
    t("{context}\n\nCan this passage answer \"{question}\"? If it can, give the answer; otherwise write "
      "unanswerable."),
    t("Questions about {title} sometimes have no answer in the text.\n\n{context}\n\n{question}"),
    t("Answer from the passage only (\"unanswerable\" is allowed).\n\nPassage: {context}\nQuestion: {question}"),
)
