from __future__ import annotations

import numpy as np
import pytest

from harness.model.spec import Head, ModelSpec
from harness.model.weights import (
    CanonicalWeights,
    WeightsError,
    expected_shapes,
    init_weights,
    load_weights,
    save_weights,
)

SPEC = ModelSpec("lstm", 3, 4, num_layers=2, bidirectional=True, head=Head(2))

# Pinned: the same seed must give these exact bytes on every machine, numpy version and OS.
PINNED_DIGEST = "c50a1ece95cf5791c8046ebb3dc1855c4d51233344a163971480107c3b0140d9"


def test_canonical_shapes_follow_the_onnx_layout():
    shapes = expected_shapes(SPEC)
    assert shapes["l0.W"] == (2, 16, 3)
    assert shapes["l1.W"] == (2, 16, 8)  # layer 1 reads both directions' outputs
    assert shapes["l0.R"] == (2, 16, 4) and shapes["l1.Rb"] == (2, 16)
    assert shapes["head.W"] == (2, 8) and shapes["head.b"] == (2,)
    gru = expected_shapes(ModelSpec("gru", 3, 5))
    assert gru == {"l0.W": (1, 15, 3), "l0.R": (1, 15, 5), "l0.Wb": (1, 15), "l0.Rb": (1, 15)}


def test_seeded_init_is_pinned_and_bounded():
    weights = init_weights(SPEC, seed=42)
    assert weights.digest() == PINNED_DIGEST
    assert init_weights(SPEC, seed=42).digest() == PINNED_DIGEST
    assert init_weights(SPEC, seed=43).digest() != PINNED_DIGEST
    assert np.abs(weights["l0.R"]).max() <= 0.5  # 1 / sqrt(H)
    assert weights["l0.R"].dtype == np.float32


def test_weights_are_read_only():
    weights = init_weights(SPEC)
    with pytest.raises(ValueError):
        weights["l0.W"][0, 0, 0] = 1.0


def test_save_load_round_trip(tmp_path):
    weights = init_weights(SPEC, seed=1)
    digest = save_weights(weights, tmp_path / "w.npz")
    loaded = load_weights(tmp_path / "w.npz")
    assert loaded.spec == SPEC and loaded.digest() == digest == weights.digest()
    for name in weights:
        np.testing.assert_array_equal(loaded[name], weights[name])


def test_shape_mismatch_is_refused_with_names(tmp_path):
    save_weights(init_weights(SPEC), tmp_path / "w.npz")
    other = SPEC.replace(hidden_size=5)
    message = r"l0.W has shape \(2, 16, 3\), the spec needs \(2, 20, 3\)"
    with pytest.raises(WeightsError, match=message):
        load_weights(tmp_path / "w.npz", other)


def test_dtype_and_missing_arrays_are_refused():
    arrays = dict(init_weights(SPEC))
    with pytest.raises(WeightsError, match="l0.R has dtype float64, the spec needs float32"):
        CanonicalWeights(SPEC, {**arrays, "l0.R": arrays["l0.R"].astype("float64")})
    del arrays["head.b"]
    with pytest.raises(WeightsError, match="missing 'head.b'"):
        CanonicalWeights(SPEC, arrays)


def test_tampered_file_fails_its_digest(tmp_path):
    weights = init_weights(SPEC)
    path = tmp_path / "w.npz"
    save_weights(weights, path)
    with np.load(path) as npz:
        contents = {k: npz[k] for k in npz.files}
    contents["l0.W"] = contents["l0.W"] + np.float32(1e-3)
    np.savez(path, **contents)
    with pytest.raises(WeightsError, match="is corrupt: sha256"):
        load_weights(path)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    save_weights(init_weights(SPEC), path)
    good = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(WeightsError, match="is not a readable .npz"):
        load_weights(tmp_path / "cut.npz")


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    save_weights(init_weights(SPEC), path)
    good = path.read_bytes()

    def half_written(handle, **arrays):
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_weights(init_weights(SPEC, seed=9), path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "nope.npz")
