"""Templates for translation, shared by every language pair and direction.

Fields: source (the text to translate), source_language, target_language (English names, e.g.
"German"); the target is `answer`, the reference translation.
"""

from __future__ import annotations

from flan_tasks.flan._tpl import t

TRANSLATION = (
    t("{source}\n\nTranslate this from {source_language} into {target_language}."),
    t("Translate the following {source_language} text to {target_language}:\n\n{source}"),
    t("How would you say this in {target_language}?\n\n{source}"),
    t("{source_language}: {source}\n{target_language}:"),
    t("Please render this sentence in {target_language}.\n\n\"{source}\""),
    t("Here is some {source_language}: {source}\n\nWhat is it in {target_language}?"),
    t("I need a {target_language} version of this {source_language} passage.\n\n{source}"),
    t("{source}\n\nGive me the {target_language} translation."),
    t("Translate into {target_language}: {source}"),
    t("Convert the text below from {source_language} to {target_language}, keeping the meaning.\n\n{source}"),
)
