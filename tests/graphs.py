"""Small hand-built IR graphs for unit tests (no frontend involved)."""

from __future__ import annotations

import numpy as np

from mcutrain.core import ir


def tiny_mlp(seed: int = 0) -> ir.Graph:
    """x(4) -> fc1(3) -> relu -> fc2(2): small enough to account for by hand."""
    rng = np.random.default_rng(seed)
    b = ir.GraphBuilder("tiny_mlp")
    x = b.input("x", (4,))
    h = b.add("fc1", ir.Linear(3), [x], weight=rng.standard_normal((3, 4)), bias=rng.standard_normal(3))
    r = b.add("relu", ir.Activation(ir.ActFn.RELU), [h])
    y = b.add("fc2", ir.Linear(2), [r], weight=rng.standard_normal((2, 3)), bias=rng.standard_normal(2))
    return b.build([y])


def small_cnn(seed: int = 0) -> ir.Graph:
    """conv-relu-maxpool-flatten-fc-relu-fc-softmax, like ST's hand-posture CNN."""
    rng = np.random.default_rng(seed)
    b = ir.GraphBuilder("small_cnn")
    x = b.input("x", (2, 8, 8))
    c = b.add(
        "conv", ir.Conv2d(8, (3, 3)), [x], weight=rng.standard_normal((8, 2, 3, 3)) * 0.3, bias=np.zeros(8)
    )
    r = b.add("relu", ir.Activation(ir.ActFn.RELU), [c])
    p = b.add("pool", ir.MaxPool2d((2, 2), (2, 2)), [r])
    f = b.add("flat", ir.Reshape((72,)), [p])
    l1 = b.add("fc1", ir.Linear(32), [f], weight=rng.standard_normal((32, 72)) * 0.1, bias=np.zeros(32))
    r2 = b.add("relu2", ir.Activation(ir.ActFn.RELU), [l1])
    l2 = b.add("fc2", ir.Linear(8), [r2], weight=rng.standard_normal((8, 32)) * 0.2, bias=np.zeros(8))
    s = b.add("softmax", ir.Softmax(), [l2])
    return b.build([s])


def residual(seed: int = 0) -> ir.Graph:
    """conv stem, residual block with a strided projection shortcut, global pool, linear."""
    rng = np.random.default_rng(seed)
    b = ir.GraphBuilder("residual")
    x = b.input("x", (3, 12, 12))

    def conv(name: str, src: str, cin: int, cout: int, k: int, s: int) -> str:
        p = k // 2
        return b.add(
            name,
            ir.Conv2d(cout, (k, k), (s, s), (p, p, p, p)),
            [src],
            weight=rng.standard_normal((cout, cin, k, k)) * (1.0 / np.sqrt(cin * k * k)),
            bias=rng.standard_normal(cout) * 0.1,
        )

    s0 = b.add("r0", ir.Activation(ir.ActFn.RELU), [conv("stem", x, 3, 8, 3, 1)])
    a = b.add("r1", ir.Activation(ir.ActFn.RELU), [conv("c1", s0, 8, 16, 3, 2)])
    a = conv("c2", a, 16, 16, 3, 1)
    sc = conv("proj", s0, 8, 16, 1, 2)
    y = b.add("r2", ir.Activation(ir.ActFn.RELU), [b.add("add", ir.Add(), [a, sc])])
    g = b.add("gap", ir.GlobalAvgPool(), [y])
    out = b.add("fc", ir.Linear(5), [g], weight=rng.standard_normal((5, 16)) * 0.3, bias=np.zeros(5))
    return b.build([out])
