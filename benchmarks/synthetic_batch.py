"""Random T5 training batches shared by the train-step benchmarks (no tensorflow, seqio or jax needed)."""

from __future__ import annotations

VOCAB = 32128  # T5's 32000 pieces + 100 extra ids, rounded up to 128


def make_data(batch: int, input_len: int, target_len: int, seed: int = 0) -> dict:
    """Random non-padding tokens (ids 2..vocab-1), EOS-terminated; decoder inputs shifted right."""
    import numpy as np

    rng = np.random.default_rng(seed)
    enc = rng.integers(2, VOCAB, (batch, input_len), dtype=np.int32)
    tgt = rng.integers(2, VOCAB, (batch, target_len), dtype=np.int32)
    enc[:, -1] = 1
    tgt[:, -1] = 1
    dec = np.pad(tgt, ((0, 0), (1, 0)))[:, :-1]
    return {
        "encoder_input_tokens": enc,
        "decoder_input_tokens": dec,
        "decoder_target_tokens": tgt,
        "decoder_loss_weights": np.ones_like(tgt, dtype=np.float32),
    }
