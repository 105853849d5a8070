"""Templates for reading comprehension with commonsense (CosmosQA, ReCoRD).

Fields: CosmosQA context / question (options: the four answers); ReCoRD passage / query (the
query with its blank shown as ___; options: the passage entities).
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

COSMOS_QA = (
    t("{context}\n\n{question}" + OPTS),
    t("Read the passage and answer the question.\n\n{context}\n\nQuestion: {question}" + OPTS),
    t("{context}\n\nAnswer using common sense: {question}" + OPTS),
    t("Context: {context}\nQuestion: {question}\n\nWhich answer is most plausible?" + OPTS),
    t("Here is a personal story:\n{context}\n\n{question}" + OPTS),
    t("{question}\n\nThink about this passage:\n{context}" + OPTS),
    t("Story: {context}\n\nBased on the story, {question}" + OPTS),
    t("Reading comprehension with a bit of reasoning.\n\n{context}\n\nQ: {question}" + OPTS),
    turned("{context}\n\nWrite a question about this passage whose most sensible answer is \"{answer}\".",
           "{question}"),
    turned("Answer: {answer}\n\nQuestion: {question}\n\nWrite a short passage this question could be about.",
           "{context}"),
)

RECORD = (
    t("{passage}\n\nFill in the blank: {query}" + OPTS),
    t("Read this news story.\n\n{passage}\n\nWhich entity belongs in the blank? {query}" + OPTS),
    t("{passage}\n\nWhat should replace ___ in the following sentence?\n{query}" + OPTS),
    t("Article:\n{passage}\n\nSentence with a gap: {query}\n\nChoose the missing entity." + OPTS),
    t("Complete the sentence based on the article.\n\n{passage}\n\n{query}" + OPTS),
    t("{query}\n\nUse this passage to find who or what is missing:\n{passage}" + OPTS),
    t("Here is a story and a follow-up sentence with a blank.\n\nStory: {passage}\n\nFollow-up: {query}" + OPTS),
    t("{passage}\n\nWho or what is ___ in: \"{query}\"?" + OPTS),
    t("Passage: {passage}\n\nQuestion: {query}\nAnswer with the entity that fits the blank." + OPTS),
    turned("{passage}\n\nWrite a follow-up sentence about the story with a blank (___) that should be filled by "
           "\"{answer}\".", "{query}"),
)
