import os

import pytest
import torch

from proposals.training import checkpoints
from proposals.training.checkpoints import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    path = save_checkpoint({"kind": "detector", "state_dict": {"w": torch.arange(3.0)}, "label_ids": [4, 9]},
                           tmp_path / "model.pt")
    loaded = load_checkpoint(path, kind="detector")
    assert loaded["label_ids"] == [4, 9]
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3.0))
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint({"kind": "detector", "version": 1}, path)

    def crash_mid_write(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", crash_mid_write)
    with pytest.raises(OSError):
        save_checkpoint({"kind": "detector", "version": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["version"] == 1
    assert os.listdir(tmp_path) == ["model.pt"]


def test_kind_is_checked(tmp_path):
    path = save_checkpoint({"kind": "embedding"}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="embedding"):
        load_checkpoint(path, kind="detector")
