"""One training step of the generated C (gcc -O2, host) vs PyTorch eager with one thread.

Same model, same plan (full update, SGD), same samples; the two run in alternating rounds in one
process so that machine noise hits both, and the ratio is the median over rounds.

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


def bench(name: str, graph, x: np.ndarray, y: np.ndarray, rounds: int, steps: int, lr: float) -> None:
    plan = api.plan(graph, None, "full").plan
    plan = plan.__class__(**{**plan.__dict__, "optimizer": plan.optimizer.__class__(lr=lr)})
    with tempfile.TemporaryDirectory() as d:
        emit(graph, plan, d)
        host = HostModel(build_host(d), graph, plan)
        tstep = torch_step_fn(graph, lr)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        ratios, c_ms, t_ms = [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for i in range(steps):
                host.train_step(x[i % len(x)], y[i % len(y)])
            c = (time.perf_counter() - t0) / steps
            t0 = time.perf_counter()
            for i in range(steps):
                tstep(xt[i % len(x) : i % len(x) + 1], yt[i % len(y) : i % len(y) + 1])
            t = (time.perf_counter() - t0) / steps
            ratios.append(t / c)
            c_ms.append(c * 1e3)
            t_ms.append(t * 1e3)
    print(
        f"{name:<22} {statistics.median(c_ms):>9.3f} {statistics.median(t_ms):>10.3f} "
        f"{statistics.median(ratios):>8.1f}x  (min {min(ratios):.1f}x, max {max(ratios):.1f}x)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'model':<22} {'C ms/step':>9} {'torch ms':>10} {'speed-up':>9}")
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
