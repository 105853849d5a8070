"""Where benchmark results go: one JSON file per run under benchmarks/results/ (or a path given)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def write_results(result: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """Writes `result` as indented JSON, creating the folder, and says where."""
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return out
