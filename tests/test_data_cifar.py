"""CIFAR subset reader: the shifts and the split on small arrays, and the shared data README's facts
(ResNet-8 at 75.1% clean, 68.2% grayscale, 14.9% noisy) reproduced with mcutrain's TFLite importer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mcutrain import api
from mcutrain.core import semantics
from mcutrain.data import cifar
from mcutrain.data.shared import SharedDataMissing, read_manifest, shared_path


def _shared(*parts: str) -> Path:
    try:
        return shared_path(*parts)
    except SharedDataMissing as e:
        pytest.skip(f"shared data absent: {e}")


def _fake(tmp_path: Path, n_per_class: int = 6) -> Path:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), n_per_class).astype(np.uint8)
    x = rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8)
    p = tmp_path / "c.npz"
    np.savez(p, x=x, y=y, classes=np.array(read_manifest("cifar10_shift")["classes"]))
    return p


def test_shifts_on_small_file(tmp_path: Path) -> None:
    p = _fake(tmp_path)
    raw, _, _ = cifar.read(p)
    clean = cifar.load(p)
    assert clean.x.shape == (60, 3, 32, 32) and clean.x.dtype == np.float32
    np.testing.assert_array_equal(clean.x, raw.transpose(0, 3, 1, 2))  # raw 0..255, no /255
    gray = cifar.load(p, "grayscale").x
    assert (gray[:, 0] == gray[:, 1]).all() and (gray[:, 1] == gray[:, 2]).all()
    r, g, b = (raw[..., c].astype(np.float64) for c in range(3))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    assert np.abs(gray[:, 0] - lum).max() <= 0.5 + 1e-9  # rounded
    tie = np.array([[[[0, 14, 76], [0, 0, 0]]]], dtype=np.uint8)  # luma 15.5 exactly: rounds up
    np.testing.assert_array_equal(cifar.grayscale(tie)[..., 0], [[[16, 0]]])
    np.testing.assert_array_equal(cifar.grayscale(np.full((1, 1, 1, 3), 7, np.uint8))[..., 0], [[[7]]])
    noisy = cifar.load(p, "noise")
    assert noisy.x.min() >= 0 and noisy.x.max() <= 255
    assert np.array_equal(noisy.x, cifar.load(p, "noise", seed=0).x)
    assert not np.array_equal(noisy.x, cifar.load(p, "noise", seed=1).x)
    d = noisy.x - clean.x
    inside = (noisy.x > 0) & (noisy.x < 255)
    assert abs(d[inside].std() - 25) < 1.5  # unclipped pixels carry sigma 25
    with pytest.raises(cifar.CifarError, match="unknown shift"):
        cifar.load(p, "blur")


def test_split_stratified_seeded(tmp_path: Path) -> None:
    c = cifar.load(_fake(tmp_path))
    a, t = c.split()
    assert len(a) == len(t) == 30
    assert (np.bincount(a.y, minlength=10) == 3).all() and (np.bincount(t.y, minlength=10) == 3).all()
    assert set(a.index).isdisjoint(t.index) and (np.diff(t.index) > 0).all()
    assert len(set(a.y[:10])) > 3  # the adapt stream mixes classes
    a2, _ = c.split()
    assert np.array_equal(a.index, a2.index)
    assert not np.array_equal(a.index, c.split(seed=1)[0].index)
    with pytest.raises(cifar.CifarError, match="strictly between"):
        c.split(fraction=0.0)


def test_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, x=np.zeros((2, 32, 32, 3), np.float32), y=np.zeros(2))
    with pytest.raises(cifar.CifarError, match="uint8"):
        cifar.read(p)
    with pytest.raises(cifar.CifarError, match="cannot read"):
        cifar.read(tmp_path / "missing.npz")


@pytest.fixture(scope="module")
def graph():
    return api.load(_shared(read_manifest("cifar10_shift")["model"]))


@pytest.mark.parametrize(("shift", "acc", "tol"), [("clean", 0.751, 0.005), ("grayscale", 0.682, 0.005),
                                                     ("noise", 0.149, 0.01)])  # fmt: skip
def test_reproduces_readme_facts(graph, shift: str, acc: float, tol: float) -> None:
    c = cifar.load(_shared(read_manifest("cifar10_shift")["source"]), shift)
    assert len(c) == 1000 and (np.bincount(c.y) == 100).all()
    correct = semantics.forward(graph, torch.from_numpy(c.x)).argmax(1).numpy() == c.y
    assert abs(correct.mean() - acc) <= tol
