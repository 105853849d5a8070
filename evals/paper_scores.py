"""Published numbers to set our results against (Wei et al., ICLR 2022, zero-shot held-out clusters).

Cluster averages from the paper's headline comparison: FLAN 137B against GPT-3 175B zero-shot and
few-shot. Keys are the flan suite's cluster names; the datasets each average covers are listed
because the paper's cluster averages use a subset of the cluster's datasets. Per-dataset paper
scores travel with the task specs (`EvalEntry.paper_score`), not here.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PaperClusterScore:
    cluster: str
    datasets: tuple[str, ...]  # the datasets the paper averaged
    flan_137b: float
    gpt3_175b_zero_shot: float
    gpt3_175b_few_shot: float


PAPER_CLUSTER_SCORES: dict[str, PaperClusterScore] = {
    s.cluster: s
    for s in (
        PaperClusterScore("nli", ("anli_r1", "anli_r2", "anli_r3", "cb", "rte"), 56.2, 42.9, 53.2),
        PaperClusterScore("reading_comprehension", ("bool_q", "multirc", "openbookqa"), 77.4, 63.7, 72.6),
        PaperClusterScore(
            "closed_book_qa", ("arc_easy", "arc_challenge", "natural_questions", "trivia_qa"), 53.7, 49.8, 55.7
        ),
    )
}

# Other published facts the report may quote.
DATASETS_FLAN_BEATS_GPT3_ZERO_SHOT = (20, 25)
CLUSTER_COUNT_ABLATION = {1: 49.9, 7: 63.5}  # held-out average vs number of training clusters
SOURCE = "Wei et al., Finetuned Language Models Are Zero-Shot Learners, ICLR 2022"


def paper_cluster_score(cluster: str) -> PaperClusterScore | None:
    """The paper's numbers for a cluster, or None when the paper gives no headline average."""
    return PAPER_CLUSTER_SCORES.get(cluster)


def as_dict(cluster: str) -> dict | None:
    """JSON-ready form of `paper_cluster_score` (with the source cited)."""
    score = paper_cluster_score(cluster)
    if score is None:
        return None
    out = dataclasses.asdict(score)
    out["datasets"] = list(score.datasets)
    out["source"] = SOURCE
    return out
