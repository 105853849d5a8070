"""Small helpers for writing templates compactly."""

from __future__ import annotations

from flan_tasks.spec import Template

OPTS = "\n\n{options_}"


def t(inputs: str, targets: str = "{answer}") -> Template:
    """A plain template (the target defaults to the gold answer)."""
    return Template(inputs=inputs, targets=targets)


def turned(inputs: str, targets: str) -> Template:
    """A turned-around template: the task inverted; training only, never rank-scored."""
    return Template(inputs=inputs, targets=targets, turned_around=True)
