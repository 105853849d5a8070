"""Command line: ``python -m flan_trainer.interop {import-hf,import-t5x,export-hf} SRC DST [options]``.

- ``import-hf SRC DST``: an HF T5 directory -> an Orbax checkpoint ``DST/checkpoint_<step>``
  (usable as INITIAL_CHECKPOINT_PATH) plus ``DST/model_config.json``.
- ``import-t5x SRC DST``: a legacy or Orbax T5X checkpoint -> the same. SRC may be a model dir (its
  latest step), a checkpoint_<step> dir, or (legacy) the msgpack ``checkpoint`` file itself.
- ``export-hf SRC DST``: any supported checkpoint -> an HF directory; ``--spm`` adds the tokenizer,
  ``--verify`` compares our logits with transformers' on a padded random batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from typing import Any

import numpy as np

from flan_trainer.interop import detect, hf_export, hf_import, t5x_legacy
from flan_trainer.interop import load_checkpoint as _load
from flan_trainer.interop.hf_names import ConversionError

MODEL_CONFIG_FILE = "model_config.json"


def _overrides(src: pathlib.Path, extra: str | None) -> dict[str, Any]:
    """Config fields a T5X tree cannot show: from model_config.json next to SRC, then --config."""
    out: dict[str, Any] = {}
    # SRC may be a model dir, a checkpoint_<step> dir, or T5X's msgpack 'checkpoint' file.
    folders = (src, src.parent) if src.is_dir() else (src.parent, src.parent.parent)
    for candidate in (folder / MODEL_CONFIG_FILE for folder in folders):
        if candidate.is_file():
            out.update(json.loads(candidate.read_text()))
            break
    if extra:
        out.update(json.loads(extra))
    return out


def _save_orbax(ckpt: t5x_legacy.T5XCheckpoint, dst: pathlib.Path, step: int) -> pathlib.Path:
    from flan_trainer import checkpoints  # noqa: PLC0415 - only the import commands write Orbax

    with checkpoints.CheckpointManager(dst, period=1) as mgr:
        if not mgr.save(step, {"params": ckpt.params}, force=True):
            raise SystemExit(f"{checkpoints.step_dir(dst, step)} already exists; not overwriting")
    (dst / MODEL_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(ckpt.config), indent=2) + "\n")
    return checkpoints.step_dir(dst, step)


def verify_against_transformers(params: Any, config: Any, hf_dir: pathlib.Path, seed: int = 0) -> float:
    """Max relative difference of decoder logits (ours vs transformers) on a padded random batch."""
    import jax.numpy as jnp  # noqa: PLC0415

    if "tensorflow" in sys.modules:  # triton after TF aborts (two LLVMs); torch only probes for it
        sys.modules.setdefault("triton", None)
    import torch  # noqa: PLC0415 - optional dependency, only for --verify
    import transformers  # noqa: PLC0415

    from flan_trainer.models import t5  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    enc = rng.integers(2, config.vocab_size, (2, 16))
    tgt = rng.integers(2, config.vocab_size, (2, 8))
    enc[1, 9:] = 0  # padding in the second row of both
    tgt[1, 5:] = 0
    dec_in = np.concatenate([np.zeros((2, 1), enc.dtype), tgt[:, :-1]], axis=1)
    model = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                    decoder_input_ids=torch.tensor(dec_in), decoder_attention_mask=torch.tensor(tgt > 0)).logits.numpy()
    module = t5.Transformer(dataclasses.replace(config, dtype="float32"))
    ours = np.asarray(module.apply({"params": params}, jnp.asarray(enc), jnp.asarray(dec_in), jnp.asarray(tgt),
                                   enable_dropout=False))
    keep = tgt > 0
    return float(np.max(np.abs(ours[keep] - ref[keep])) / np.max(np.abs(ref[keep])))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flan_trainer.interop", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("import-hf", "HF T5 directory -> Orbax checkpoint"),
                        ("import-t5x", "legacy or Orbax T5X checkpoint -> Orbax checkpoint"),
                        ("export-hf", "any checkpoint -> HF T5 directory")):
        c = sub.add_parser(name, help=help_)
        c.add_argument("src", type=pathlib.Path)
        c.add_argument("dst", type=pathlib.Path)
        c.add_argument("--config", help="JSON of TransformerConfig fields to override")
        if name == "export-hf":
            c.add_argument("--spm", type=pathlib.Path, help="SentencePiece model to ship as the tokenizer")
            c.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
            c.add_argument("--max-shard-bytes", type=int, default=None)
            c.add_argument("--verify", action="store_true", help="check logits against transformers")
        else:
            c.add_argument("--step", type=int, default=None, help="step to save as (default: the source's, or 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from flan_trainer import checkpoints  # noqa: PLC0415

    try:
        return _main(args)
    except (detect.UnknownCheckpointFormatError, ConversionError, FileNotFoundError,
            checkpoints.CheckpointCorruptError, checkpoints.CheckpointMismatchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    overrides = _overrides(args.src, args.config)
    if args.command == "import-hf":
        params, config = hf_import.import_hf(args.src, config_overrides=overrides)
        ckpt = t5x_legacy.T5XCheckpoint(params=params, config=config, step=None)
    else:
        fmt = detect.detect_checkpoint_format(args.src)
        if args.command == "import-t5x" and fmt == "hf":
            raise SystemExit(f"{args.src} is a Hugging Face directory; use import-hf")
        ckpt = _load(args.src, config_overrides=overrides)
    if args.command != "export-hf":
        step = args.step if args.step is not None else (ckpt.step or 0)
        print(f"wrote {_save_orbax(ckpt, args.dst, step)}")
        return 0
    out = hf_export.export_hf(ckpt.params, ckpt.config, args.dst, spm_path=args.spm, dtype=args.dtype,
                              max_shard_bytes=args.max_shard_bytes)
    print(f"wrote {out}")
    if args.verify:
        err = verify_against_transformers(ckpt.params, ckpt.config, out)
        print(f"max relative logit difference vs transformers: {err:.2e}")
        if err > 1e-3 and args.dtype == "float32":
            print("logit check FAILED", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
