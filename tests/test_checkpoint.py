"""Checkpoints: round trip, no code execution on load, tamper and version checks."""

import pickle

import pytest
import torch

from models import CheckpointError, NetConfig, RecurrentForecaster, ScoringConfig, load_checkpoint, save_checkpoint
from models.checkpoint import DEFAULT_CHECKPOINT


def test_round_trip_rebuilds_model_and_configs(tmp_path) -> None:
    net = RecurrentForecaster(NetConfig(cell="lstm", input_size=3, hidden_size=8, num_layers=2, proj_size=4))
    path = save_checkpoint(tmp_path / "m.pt", net, ScoringConfig(warmup=7), {"model_id": "m1"})
    ck = load_checkpoint(path)
    assert ck.model.config == net.config and ck.scoring.warmup == 7 and ck.model_id == "m1"
    for k, v in net.state_dict().items():
        assert torch.equal(v, ck.model.state_dict()[k])


def test_tampered_weights_are_refused(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", RecurrentForecaster(NetConfig()), ScoringConfig())
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["head.bias"] += 1.0
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="integrity"):
        load_checkpoint(path)


def test_unknown_format_version_is_refused(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", RecurrentForecaster(NetConfig()), ScoringConfig())
    blob = torch.load(path, weights_only=True)
    blob["header"] = blob["header"].replace('"format_version": 1', '"format_version": 99')
    torch.save(blob, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(path)


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_loading_never_executes_code(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"header": _Evil()}, fh)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_missing_and_garbage_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_bundled_default_checkpoint_loads() -> None:
    ck = load_checkpoint()
    assert ck.path == DEFAULT_CHECKPOINT
    assert ck.model.config.input_size == 1
    assert ck.meta["data"]["synthetic_series"] > 0  # trained by the documented command
