"""``python -m flan_trainer.interop``: HF -> Orbax -> HF with the logit check, and legacy T5X -> Orbax."""

import json
import sys

import numpy as np
import pytest

from flan_trainer.interop import __main__ as cli
from flan_trainer.interop import detect_checkpoint_format, hf_names, import_t5x_orbax

# TensorFlow (via seqio) and triton each bundle LLVM; importing triton after TF aborts the process
# ("inconsistency in registered CommandLine options"). torch only probes triton, and CPU tests need
# none, so hide it unless something already loaded it.
sys.modules.setdefault("triton", None)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.interop


@pytest.mark.slow
def test_cli_round_trip(tmp_path, capsys):
    from test_interop_hf import _random_t5  # noqa: PLC0415 - shared fixture builder
    from test_interop_t5x import _random_params, write_legacy_checkpoint  # noqa: PLC0415

    _random_t5(seed=4).save_pretrained(tmp_path / "hf")
    assert cli.main(["import-hf", str(tmp_path / "hf"), str(tmp_path / "orbax"), "--step", "12"]) == 0
    assert detect_checkpoint_format(tmp_path / "orbax") == "orbax"
    saved = json.loads((tmp_path / "orbax" / cli.MODEL_CONFIG_FILE).read_text())
    assert saved["emb_dim"] == 64 and saved["mlp_dim"] == 96
    assert cli.main(["export-hf", str(tmp_path / "orbax"), str(tmp_path / "back"), "--verify"]) == 0
    out = capsys.readouterr().out
    err = float(out.split("vs transformers: ")[1].split()[0])
    assert err < 1e-4, out
    original = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "hf").state_dict()
    back = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "back").state_dict()
    for key, value in original.items():
        assert torch.equal(value, back[key]), key

    params = _random_params(5)
    write_legacy_checkpoint(tmp_path / "legacy" / "checkpoint_20", params, step=20)
    assert cli.main(["import-t5x", str(tmp_path / "legacy"), str(tmp_path / "from_legacy")]) == 0
    got = import_t5x_orbax(tmp_path / "from_legacy" / "checkpoint_20")
    for path, value in hf_names.flatten_paths(params).items():
        np.testing.assert_array_equal(np.asarray(hf_names.get_path(got.params, path)), value)
