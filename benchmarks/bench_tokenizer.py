"""What T5's SentencePiece costs the on-the-fly input pipeline, and whether it can be split by word.

Two measurements on the rendered training texts of flan_all_train's tasks (offline mock TFDS data
with the real datasets' length distributions, flan_tasks/flan/mock_data.FIELD_WORDS):

  cost      CPU microseconds per character of seqio's SentencePiece op (tf_text), one text per op
            call (seqio.preprocessors.tokenize) and 64 texts per call (flan_tasks/batched.py), in a
            tf.data map on one core; and per example, at the texts' mean length
  locality  whether encoding a text word by word (what a word cache would do) gives the ids of
            encoding it whole: on the flan texts, and on random 2,000-word ASCII texts, whose rare
            words have several near-equal segmentations. SentencePiece's Viterbi adds float32
            piece scores along the whole text, so a near-tie inside a word can be decided by the
            rounding at the running total's magnitude: a word cache is then not exact.

    .venv/bin/python benchmarks/bench_tokenizer.py --spm /work/shared/vocab/t5_cc_all_32000.spiece.model
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import string
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_SPM = REPO.parent / "shared" / "vocab" / "t5_cc_all_32000.spiece.model"


def flan_texts(spm: str, tasks: int, examples: int) -> list[bytes]:
    """inputs and targets, as rendered, of `examples` mock examples of the first `tasks` tasks."""
    import seqio

    from flan_tasks.flan import register_flan_collection
    from flan_tasks.flan.mock_data import mock_flan_tfds

    register_flan_collection(vocabulary=seqio.SentencePieceVocabulary(spm, extra_ids=100))
    texts: list[bytes] = []
    with mock_flan_tfds(num_examples=examples, realistic_lengths=True):
        for task in seqio.get_mixture_or_task("flan_all_train").tasks[:tasks]:
            ds = task.get_dataset(sequence_length=None, split="train", shuffle=False, num_epochs=1)
            for ex in ds.as_numpy_iterator():
                texts += [ex["inputs_pretokenized"], ex["targets_pretokenized"]]
    return texts


def op_cost(spm: str, texts: list[bytes]) -> dict:
    """CPU microseconds per character of the SentencePiece op, per text and in batches of 64."""
    import seqio
    import tensorflow as tf

    vocab = seqio.SentencePieceVocabulary(spm, extra_ids=100)
    # Several passes in one iterator: making an iterator loads the model into the op (tens of ms).
    reps = max(1, -(-5_000_000 // sum(len(t) for t in texts)))
    chars = reps * sum(len(t) for t in texts)
    source = tf.data.Dataset.from_tensor_slices(texts).repeat(reps)
    pipelines = {"per_text": source.map(vocab.encode_tf).ragged_batch(4096),  # counted in big batches:
                 "batch_64": source.batch(64).map(vocab.encode_tf)}  # no python per element
    out: dict = {}
    for name, ds in pipelines.items():
        for _ in ds:  # once untimed: functions traced, model loaded
            pass
        start = time.process_time()
        for _ in ds:
            pass
        out[f"us_per_char_{name}"] = round((time.process_time() - start) / chars * 1e6, 4)
    mean_example = 2 * sum(len(t) for t in texts) / len(texts)  # inputs + targets
    out.update(chars_per_example=round(mean_example), texts=len(texts),
               us_per_example_per_text=round(out["us_per_char_per_text"] * mean_example),
               us_per_example_batch_64=round(out["us_per_char_batch_64"] * mean_example))
    return out


def random_texts(n: int, words: int, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    alphabet = np.array(list(string.ascii_letters + string.digits + ".,;:'-()!?\"/&%$#@*+="))
    return [" ".join("".join(rng.choice(alphabet, size=rng.integers(1, 14))) for _ in range(words))
            for _ in range(n)]


def locality(spm: str, texts: list[str]) -> dict:
    """How many texts encode differently whole than word by word (whitespace-split)."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=spm)
    differ = sum(sp.encode(t) != [i for w in t.split() for i in sp.encode(w)] for t in texts)
    return {"texts": len(texts), "differ": differ, "words": sum(len(t.split()) for t in texts)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spm", default=str(DEFAULT_SPM), help="T5 SentencePiece model path")
    parser.add_argument("--tasks", type=int, default=75, help="flan_all_train tasks whose texts are used")
    parser.add_argument("--examples", type=int, default=64, help="mock examples per task")
    parser.add_argument("--random_texts", type=int, default=300)
    parser.add_argument("--random_words", type=int, default=2000)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "tokenizer.json"))
    args = parser.parse_args(argv)
    import tensorflow as tf
    from results_io import write_results  # benchmarks/ is on sys.path when run as a script

    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    texts = flan_texts(args.spm, args.tasks, args.examples)
    report = {
        "benchmark": "T5 SentencePiece in the flan training pipeline: CPU cost and word locality",
        "spm": args.spm,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "cost_1_core": op_cost(args.spm, texts),
        "locality_flan_texts": locality(args.spm, [t.decode() for t in texts]),
        "locality_random_texts": locality(args.spm, random_texts(args.random_texts, args.random_words)),
    }
    c, lf, lr = report["cost_1_core"], report["locality_flan_texts"], report["locality_random_texts"]
    print(f"SentencePiece, 1 core: {c['us_per_char_per_text']} us/char one text per call, "
          f"{c['us_per_char_batch_64']} us/char 64 per call; {c['chars_per_example']} chars per example: "
          f"{c['us_per_example_per_text']} / {c['us_per_example_batch_64']} us per example")
    print(f"word by word != whole text: {lf['differ']} of {lf['texts']} flan texts, "
          f"{lr['differ']} of {lr['texts']} random {args.random_words}-word texts")
    write_results(report, args.out)
    return report


if __name__ == "__main__":
    main()
