"""Checkpoint folders: a write cut off midway is never read as complete; weights of another model are refused by name."""
import pytest
import torch
from torch import nn

from core.engine import checkpoint


def _model(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def test_a_write_cut_off_midway_leaves_no_state_file_to_read(tmp_path, monkeypatch):
    def cut_off(obj, path):
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", cut_off)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(tmp_path / "checkpoint_1", _model(8), None, {"epoch": 1})
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        checkpoint.read(tmp_path / "checkpoint_1")


def test_weights_of_a_model_of_another_shape_are_refused_naming_the_tensors(tmp_path):
    checkpoint.save(tmp_path / "wide", _model(16), None, {"epoch": 0})
    narrow = _model(8)
    before = {name: tensor.clone() for name, tensor in narrow.state_dict().items()}
    with pytest.raises(ValueError) as err:
        checkpoint.load(tmp_path / "wide", narrow)
    message = str(err.value)
    assert f"checkpoint {tmp_path / 'wide'} was saved from a model of another shape" in message
    assert "0.weight: [16, 4] in the checkpoint, [8, 4] in this model" in message
    assert "2.weight: [2, 16] in the checkpoint, [2, 8] in this model" in message and "(3 tensor(s) differ)" in message
    assert all(torch.equal(before[name], tensor) for name, tensor in narrow.state_dict().items()), "nothing may be half-loaded"


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    checkpoint.save(tmp_path / "deeper", nn.Sequential(_model(8), nn.Linear(2, 2)), None, {"epoch": 0})
    with pytest.raises(ValueError) as err:
        checkpoint.load(tmp_path / "deeper", nn.Sequential(_model(8), nn.Identity()))
    assert "1.weight: in the checkpoint, not in this model" in str(err.value)
