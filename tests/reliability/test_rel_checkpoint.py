"""Model loading: pickle-only checkpoints are refused unless the caller opts in.

``tests/test_encoder.py::test_unsafe_checkpoints_are_refused_unless_allowed`` covers a
Dense config naming a non-torch activation (``os.getpid``) and ``auto_map`` remote code;
this file adds pickle-only weights, a hostile pickle, the opt-in path and the default of
``trust_remote_code``.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import pytest
from conftest import load_quietly

from latecore import Encoder
from latecore.errors import ModelLoadError
from latecore.testing import write_tiny_bert_checkpoint


class _CreatesMarker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.path), "w"))


def _pickle_only(directory: Path) -> Path:
    """The tiny checkpoint with its weights as a pickle ``pytorch_model.bin`` only.

    (transformers 5 ignores ``safe_serialization=False``, so the state dict is
    written with ``torch.save``, which is what that option used to do.)
    """
    import torch
    from safetensors.torch import load_file

    write_tiny_bert_checkpoint(directory, seed=0)
    state = load_file(directory / "model.safetensors")
    torch.save(state, directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    return directory


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_pickle_only_checkpoint_is_refused_unless_allowed(tmp_path: Path) -> None:
    """Guarantees: a checkpoint whose weights exist only as a pickle ``.bin`` raises a
    ``ModelLoadError`` naming the file and ``allow_unsafe_checkpoint``; with
    ``allow_unsafe_checkpoint=True`` it loads and encodes exactly like the same weights
    in safetensors form."""
    unsafe = _pickle_only(tmp_path / "pickle-only")
    with pytest.raises(ModelLoadError, match=r"pickle.*pytorch_model\.bin|allow_unsafe"):
        Encoder(unsafe, device="cpu")

    allowed = load_quietly(unsafe, allow_unsafe_checkpoint=True)
    safe = load_quietly(write_tiny_bert_checkpoint(tmp_path / "safe", seed=0))
    texts = ["paris is the capital of france", "cats purr"]
    for a, b in zip(allowed.encode_documents(texts), safe.encode_documents(texts), strict=True):
        assert a.tobytes() == b.tobytes()
    assert allowed.fingerprint != safe.fingerprint  # the weight file is part of it


@pytest.mark.timeout(60)
def test_hostile_pickle_weights_never_run(tmp_path: Path) -> None:
    """Guarantees: a ``pytorch_model.bin`` that is a malicious pickle is refused before
    anything is unpickled (its payload does not run), and ``trust_remote_code`` is off
    unless asked for."""
    hostile = write_tiny_bert_checkpoint(tmp_path / "hostile", seed=0)
    (hostile / "model.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    (hostile / "pytorch_model.bin").write_bytes(pickle.dumps(_CreatesMarker(marker)))
    with pytest.raises(ModelLoadError, match="allow_unsafe_checkpoint=True"):
        Encoder(hostile, device="cpu")
    assert not marker.exists()

    assert inspect.signature(Encoder).parameters["trust_remote_code"].default is False
    assert inspect.signature(Encoder).parameters["allow_unsafe_checkpoint"].default is False
