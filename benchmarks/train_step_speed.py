"""One training step of the generated C vs PyTorch eager with one thread.

Two host builds of the same generated project: the portable one (`libmt.so`: gcc -O2, the portable
kernels) and the fast flavour (`libmt_fast.so`: -O3 -march=native, the vectorized conv2d kernels of
firmware/runtime/host). Same model, same plan (full update, SGD), same samples; the three run in
alternating rounds in one process so that machine noise hits all of them, and each ratio (PyTorch time
over C time) is the median over rounds.

Run:  .venv/bin/python benchmarks/train_step_speed.py [--rounds 7] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mcutrain import api, torchops
from mcutrain.codegen import emit
from mcutrain.hostbuild import HostModel, build_host

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MCUTRAIN_SHARED_DATA", ROOT.parent / "shared" / "data"))


def torch_step_fn(graph, lr: float):
    """Eager PyTorch: the same graph (torchops), autograd, torch.optim.SGD over all parameters."""
    params = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in graph.params.items()}
    nested: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in params.items():
        node, p = k.rsplit(".", 1)
        nested.setdefault(node, {})[p] = v
    opt = torch.optim.SGD(list(params.values()), lr=lr)
    logits = graph.node(graph.outputs[0]).inputs[0]

    def step(x: torch.Tensor, t: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        env = torchops.run_graph(graph, x, nested, keep=True)
        loss = -(t * torch.log_softmax(env[logits], 1)).sum()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _per_step(fn, x, y, steps: int) -> float:
    t0 = time.perf_counter()
    for i in range(steps):
        fn(x[i % len(x)], y[i % len(y)])
    return (time.perf_counter() - t0) / steps


def bench(name: str, graph, x: np.ndarray, y: np.ndarray, rounds: int, steps: int, lr: float) -> None:
    plan = api.plan(graph, None, "full").plan
    plan = plan.__class__(**{**plan.__dict__, "optimizer": plan.optimizer.__class__(lr=lr)})
    with tempfile.TemporaryDirectory() as d:
        emit(graph, plan, d)
        portable = HostModel(build_host(d), graph, plan)
        fast = HostModel(build_host(d, "libmt_fast.so"), graph, plan)
        tstep = torch_step_fn(graph, lr)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        runs = {  # name: (one step on sample i, samples, targets)
            "portable": (portable.train_step, x, y),
            "fast": (fast.train_step, x, y),
            "torch": (lambda xi, yi: tstep(xi[None], yi[None]), xt, yt),
        }
        ms: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(rounds):
            for k, (fn, xs, ys) in runs.items():
                ms[k].append(_per_step(fn, xs, ys, steps) * 1e3)
    med = {k: statistics.median(v) for k, v in ms.items()}
    up = {k: [t / c for t, c in zip(ms["torch"], ms[k], strict=True)] for k in ("portable", "fast")}
    print(
        f"{name:<18} {med['portable']:>11.3f} {med['fast']:>9.3f} {med['torch']:>9.3f} "
        + " ".join(
            f"{statistics.median(up[k]):>7.2f}x ({min(up[k]):.2f}-{max(up[k]):.2f})"
            for k in ("portable", "fast")
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("ms per step (median over rounds); speed-up = PyTorch time / C time, median (min-max) over rounds")
    print(
        f"{'model':<18} {'portable C':>11} {'fast C':>9} {'PyTorch':>9} "
        f"{'portable speed-up':>20} {'fast speed-up':>20}"
    )
    hp = api.load(SHARED / "models" / "st_handposture_vl53l5cx_cnn2d_float.tflite")
    x = rng.standard_normal((64, 2, 8, 8)).astype(np.float32)
    y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 64)]
    bench("hand-posture CNN", hp, x, y, args.rounds, args.steps * 10, 0.01)
    rn = api.load(SHARED / "models" / "mlperf_tiny_resnet8_cifar10_float.tflite")
    d = np.load(SHARED / "datasets" / "cifar10_test_1000.npz")
    x = d["x"][:64].transpose(0, 3, 1, 2).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[d["y"][:64]]
    bench("MLPerf ResNet-8", rn, x, y, args.rounds, max(5, args.steps // 5), 1e-7)


if __name__ == "__main__":
    main()
