"""T5.1.1 / Flan-T5 and decoder-only models (flax linen) with T5X's parameter tree.

Importing this package registers the gin names ``network.T5Config``,
``network.TransformerConfig``, ``models.EncoderDecoderModel`` and ``models.DecoderOnlyModel``.
"""

from flan_trainer.models.config import PRESETS, TransformerConfig, preset
from flan_trainer.models.model_api import DecoderOnlyModel, EncoderDecoderModel

__all__ = ["PRESETS", "DecoderOnlyModel", "EncoderDecoderModel", "TransformerConfig", "preset"]
