"""dlmpaper.provenance: digests and the figures-manifest entries of every notebook's models."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch

from dlmpaper import paths, provenance


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = bytes(range(256)) * 9000  # > 1 MiB: several chunks
    (tmp_path / "w.bin").write_bytes(data)
    assert provenance.sha256_file(tmp_path / "w.bin") == hashlib.sha256(data).hexdigest()


def test_model_record_hashes_local_weights_and_keeps_hub_revisions(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"abc")
    model = SimpleNamespace(name="embedded", hub_id=str(tmp_path), revision=None, dtype=torch.float32)
    rec = provenance.model_record(model, "tokenizer")
    assert rec == {
        "model_id": "embedded",
        "hub_id": str(tmp_path),
        "revision": hashlib.sha256(b"abc").hexdigest(),
        "dtype": "float32",
        "uses": "tokenizer",
    }
    hub = SimpleNamespace(name="x", hub_id="org/x", revision="r1", dtype=torch.bfloat16)
    assert provenance.model_record(hub, "probe")["revision"] == "r1"


def test_model_record_resolves_the_shipped_model_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # papermill runs notebooks elsewhere: the relative path must still resolve
    model = SimpleNamespace(name="embedded", hub_id="data/embedded_model", revision=None, dtype=torch.float32)
    expected = provenance.checkpoint_digest(paths.ROOT / "data" / "embedded_model")
    assert provenance.model_record(model, "probe")["revision"] == expected


def test_checkpoint_digest_and_toy_model_record(tmp_path):
    (tmp_path / provenance.MANIFEST_NAME).write_text("aa  config.json\nbb  model.safetensors\n")
    assert provenance.checkpoint_digest(tmp_path) == "bb"
    (tmp_path / provenance.MANIFEST_NAME).write_text("aa  config.json\n")
    with pytest.raises(ValueError, match="does not list model.safetensors"):
        provenance.checkpoint_digest(tmp_path)
    (tmp_path / "agreement").mkdir()
    (tmp_path / "agreement" / "model.safetensors").write_bytes(b"weights")
    rec = provenance.toy_model_record("agreement", "marginals", root=tmp_path)
    assert rec["model_id"] == "toy/agreement" and rec["uses"] == "marginals"
    assert rec["revision"] == hashlib.sha256(b"weights").hexdigest()
    with pytest.raises(FileNotFoundError, match="--train"):
        provenance.toy_model_record("copy", "marginals", root=tmp_path)
