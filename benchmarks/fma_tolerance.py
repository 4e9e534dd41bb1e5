"""How far the generated C drifts from the simulator when the compiler may fuse a*b+c into FMA.

Builds each model's training step twice on the host, with -ffp-contract=off (the default of the
generated Makefile, used by the parity tests) and with -mfma -ffp-contract=fast (what GCC does by
default on Cortex-M4F/M7/M55 and RV32F), runs 20 steps of each next to the simulator and prints the
largest relative difference of losses and parameters.

Run:  .venv/bin/python benchmarks/fma_tolerance.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mcutrain import api
from mcutrain.data.shared import shared_path
from mcutrain.emit.host_build import HostModel
from mcutrain.emit.model_c import emit
from mcutrain.train.simulator import Simulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from graphs import residual, small_cnn  # noqa: E402


def drift(graph, plan, flags: str, steps: int = 20) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        emit(graph, plan, d)
        env = {**os.environ, "CFLAGS": "-O2 " + flags.split("|")[0], "FP": flags.split("|")[1]}
        subprocess.run(["make", "-s", "-C", d, "-B", "libmt.so"], check=True, env=env)
        host = HostModel(Path(d) / "libmt.so", graph, plan)
        sim = Simulator(graph, plan)
        rng = np.random.default_rng(0)
        k = graph.shapes[graph.outputs[0]][0]
        worst_loss = 0.0
        for _ in range(steps):
            x = rng.standard_normal((1, *graph.inputs[0][1])).astype(np.float32)
            t = np.eye(k, dtype=np.float32)[rng.integers(0, k, 1)]
            lc = host.train_step(x[0], t[0])[1]
            ls = sim.train_step(x, t)
            worst_loss = max(worst_loss, abs(lc - ls) / max(abs(ls), 1e-6))
        got, want = host.params(), sim.numpy_params()
        worst_p = max(float(np.abs(got[n] - want[n]).max() / (np.abs(want[n]).max() + 1e-12)) for n in want)
        return worst_loss, worst_p


def main() -> None:
    models = [("small_cnn", small_cnn()), ("residual", residual()), ("mbv2_block", api.load("mbv2_block"))]
    hp = shared_path("models", "st_handposture_vl53l5cx_cnn2d_float.tflite")
    if hp.exists():
        models.append(("hand-posture CNN", api.load(hp)))
    print(f"{'model':<18} {'contract=off: loss':>19} {'params':>9}   {'FMA: loss':>10} {'params':>9}")
    for name, g in models:
        plan = api.plan(g, None, "full").plan
        off = drift(g, plan, "|-ffp-contract=off")
        fma = drift(g, plan, "-mfma|-ffp-contract=fast")
        print(f"{name:<18} {off[0]:>19.1e} {off[1]:>9.1e}   {fma[0]:>10.1e} {fma[1]:>9.1e}")


if __name__ == "__main__":
    main()
