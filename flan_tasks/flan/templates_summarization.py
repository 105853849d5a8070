"""Templates for summarization (AESLC, CNN/DailyMail, Gigaword, Multi-News, Newsroom, the two
Opinion-Abstracts sets, SAMSum, XSum, WikiLingua English) and AG News topic classification, which
the reference code files under this cluster.

Fields: AESLC email; CNN/DM article; Gigaword, Multi-News, XSum document; Newsroom title / text;
Rotten Tomatoes movie / critics; iDebate debate / argument; SAMSum dialogue; WikiLingua text;
AG News title / text (options: the four topics). The target is `answer`.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import OPTS, t, turned

AESLC = (
    t("{email}\n\nWrite a subject line for this email."),
    t("What would be a good subject for the following email?\n\n{email}"),
    t("Email body:\n{email}\n\nSubject:"),
    t("Suggest a short, clear subject line for this message.\n\n{email}"),
    t("{email}\n\nIn a few words, what is this email about?"),
    t("Here is an email I am about to send:\n{email}\n\nWhat should I put in the subject field?"),
    t("Summarize this email as a subject line.\n\n{email}"),
    t("Give this email a title.\n\n{email}"),
    turned("Write an email with the subject \"{answer}\".", "{email}"),
    turned("Subject: {answer}\n\nWrite the body of this email.", "{email}"),
)

CNN_DAILYMAIL = (
    t("{article}\n\nWrite the key points of this article as a few short highlights."),
    t("Summarize the following news story.\n\n{article}"),
    t("Article: {article}\n\nHighlights:"),
    t("Read this news report and list its main points.\n\n{article}"),
    t("{article}\n\nWhat are the most important facts in this story?"),
    t("Here is a news article:\n{article}\n\nGive a brief summary."),
    t("Condense this article into a few bullet-style sentences.\n\n{article}"),
    t("{article}\n\nTL;DR:"),
    turned("Write a news article based on these highlights.\n\n{answer}", "{article}"),
    turned("Highlights:\n{answer}\n\nExpand these into a full news story.", "{article}"),
)

GIGAWORD = (
    t("{document}\n\nWrite a headline for this text."),
    t("Give a short title to the news below.\n\n{document}"),
    t("Text: {document}\nHeadline:"),
    t("What is a concise headline for the following sentence?\n\n{document}"),
    t("{document}\n\nSum this up in a brief newspaper headline."),
    t("Here is the opening sentence of a news story: {document}\n\nWhat could its headline be?"),
    t("Compress the following into a headline: {document}"),
    t("{document}\n\nHeadline, please:"),
    turned("Write the opening sentence of a news story with the headline \"{answer}\".", "{document}"),
    turned("Headline: {answer}\n\nWrite one sentence of news that matches this headline.", "{document}"),
)

MULTI_NEWS = (
    t("{document}\n\nThe texts above are several news reports on one event. Write a summary of them."),
    t("Summarize the following articles into a single overview.\n\n{document}"),
    t("Here are multiple news sources:\n{document}\n\nWhat is the combined story?"),
    t("Read these reports and write one summary that covers all of them.\n\n{document}"),
    t("{document}\n\nWrite a short news digest of the articles above."),
    t("Source articles:\n{document}\n\nSummary:"),
    t("Combine the information in these articles into a few paragraphs.\n\n{document}"),
    t("{document}\n\nBriefly, what happened?"),
    t("Several outlets covered the same story. Summarize their coverage.\n\n{document}"),
    turned("Write a news article that this summary could be based on.\n\n{answer}", "{document}"),
)

NEWSROOM = (
    t("{title}\n\n{text}\n\nSummarize this article."),
    t("Write a short summary of the article titled \"{title}\".\n\n{text}"),
    t("Article: {text}\n\nSummary:"),
    t("{text}\n\nIn one or two sentences, what is this article about?"),
    t("Headline: {title}\n\n{text}\n\nGive a brief synopsis."),
    t("Here is a news story:\n{text}\n\nWrite a summary of it for a newsletter."),
    t("Read the article \"{title}\" and describe its main point.\n\n{text}"),
    t("{text}\n\nShort summary:"),
    turned("Title: {title}\nSummary: {answer}\n\nWrite the full article.", "{text}"),
    turned("Suggest a headline for an article with this summary: {answer}", "{title}"),
)

ROTTEN_TOMATOES = (
    t("Critics on {movie}:\n{critics}\n\nWrite a one-sentence critical consensus."),
    t("Here are reviews of the movie {movie}.\n\n{critics}\n\nWhat do the critics agree on overall?"),
    t("{critics}\n\nSummarize these review snippets of {movie} into a consensus statement."),
    t("Movie: {movie}\nReviews:\n{critics}\n\nConsensus:"),
    t("Read what critics said about {movie} and give the gist in one sentence.\n\n{critics}"),
    t("{critics}\n\nBased on these opinions, how was {movie} received?"),
    t("Combine these critics' opinions about {movie} into a short verdict.\n\n{critics}"),
    t("What is the overall critical opinion of {movie}? Use the quotes below.\n\n{critics}"),
    turned("The critical consensus on {movie} is: {answer}\n\nWrite some critic quotes that would lead to it.",
           "{critics}"),
    turned("Critics' consensus: {answer}\n\nWhich movie might this be about?", "{movie}"),
)

IDEBATE = (
    t("Debate: {debate}\n\nArgument: {argument}\n\nWhat is the central claim of this argument?"),
    t("{argument}\n\nSummarize the point being argued in one sentence."),
    t("Here is an argument from a debate on \"{debate}\".\n\n{argument}\n\nState its main claim."),
    t("Read the argument and write the claim it supports.\n\n{argument}"),
    t("Topic: {debate}\n{argument}\n\nClaim:"),
    t("{argument}\n\nIn the debate \"{debate}\", this argument supports which claim?"),
    t("Boil this debate argument down to a single claim.\n\n{argument}"),
    t("What thesis does the following argument defend?\n\n{argument}"),
    turned("Debate: {debate}\nClaim: {answer}\n\nWrite an argument that supports this claim.", "{argument}"),
    turned("Claim: {answer}\n\nWhat is the motion of the debate where this claim was made?", "{debate}"),
)

SAMSUM = (
    t("{dialogue}\n\nSummarize this conversation."),
    t("Here is a chat between friends:\n{dialogue}\n\nWhat did they talk about? Write a short summary."),
    t("Dialogue:\n{dialogue}\n\nSummary:"),
    t("Read the messages below and describe what happened in one or two sentences.\n\n{dialogue}"),
    t("{dialogue}\n\nWrite a brief recap of this chat."),
    t("Summarize the following dialogue in the third person.\n\n{dialogue}"),
    t("{dialogue}\n\nWhat is the gist of this exchange?"),
    t("Give a short summary of this messenger conversation.\n\n{dialogue}"),
    turned("Write a short chat conversation that matches this summary: {answer}", "{dialogue}"),
    turned("Summary: {answer}\n\nWrite the dialogue this summary describes.", "{dialogue}"),
)

XSUM = (
    t("{document}\n\nSummarize this article in one sentence."),
    t("Write a single-sentence summary of the following text.\n\n{document}"),
    t("Article: {document}\n\nOne-line summary:"),
    t("{document}\n\nWhat is this article about, in a sentence?"),
    t("Read the article and give its main point in one sentence.\n\n{document}"),
    t("Here is a BBC news article:\n{document}\n\nSummarize it very briefly."),
    t("Give the gist of this news story in one sentence.\n\n{document}"),
    t("{document}\n\nIn short:"),
    turned("Write a news article that can be summarized as: {answer}", "{document}"),
    turned("Summary: {answer}\n\nWrite the article this sentence summarizes.", "{document}"),
)

WIKI_LINGUA = (
    t("{text}\n\nSummarize these instructions."),
    t("Write a short summary of the following how-to text.\n\n{text}"),
    t("Instructions:\n{text}\n\nSummary:"),
    t("{text}\n\nWhat are the main steps described above?"),
    t("Read this guide and condense it into a few sentences.\n\n{text}"),
    t("Here is part of a how-to article:\n{text}\n\nGive a brief overview."),
    t("Summarize the advice in this text.\n\n{text}"),
    t("{text}\n\nTL;DR of these steps:"),
    turned("Write a detailed how-to text from this summary: {answer}", "{text}"),
    turned("Summary of steps: {answer}\n\nExpand it into full instructions.", "{text}"),
)

AG_NEWS = (
    t("{title}\n\n{text}\n\nWhat is this news article about?" + OPTS),
    t("Which topic is this article about?\n\n{text}" + OPTS),
    t("Headline: {title}\n{text}\n\nChoose the section of the newspaper this belongs in." + OPTS),
    t("{text}\n\nClassify the topic of the text above." + OPTS),
    t("Read the news snippet and pick its category.\n\n{title}: {text}" + OPTS),
    t("\"{title}\"\n\nIs this headline about world news, sports, business or science and technology?" + OPTS),
    t("Here is a piece of news: {text}\n\nWhat kind of news is it?" + OPTS),
    turned("Write a title for a {answer} news article.", "{title}"),
    turned("Write a short news snippet in the category {answer}.", "{text}"),
    turned("Topic: {answer}\nHeadline: {title}\n\nWrite the first lines of this article.", "{text}"),
)
