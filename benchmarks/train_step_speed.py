"""One training step of the generated C vs PyTorch eager with one thread.

Two host builds of the same generated project: the portable one (`libmt.so`: gcc -O2, the portable
kernels) and the fast flavour (`libmt_fast.so`: -O3 -march=native, the vectorized conv2d kernels of
firmware/runtime/host). Same model, same plan (full update, SGD), same samples; the three run in
alternating rounds in one process so that machine noise hits all of them, and each ratio (PyTorch time
over C time) is the median over rounds. Times are the thread's CPU time (PyTorch runs one thread, in
the calling thread), so that time spent descheduled on a shared machine counts for neither.

`--profile` then splits one ResNet-8 step of each build by kernel (the MT_PROFILE hook of the generated
code, timed with the thread's CPU clock in a small C driver).

Run:  .venv/bin/python benchmarks/train_step_speed.py [--rounds 7] [--steps 50] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mcutrain import api
from mcutrain.core import semantics
from mcutrain.data.shared import shared_path
from mcutrain.emit.host_build import HostModel, build_host
from mcutrain.emit.model_c import emit


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
        env = semantics.run_graph(graph, x, nested, keep=True)
        loss = -(t * torch.log_softmax(env[logits], 1)).sum()
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def _per_step(fn, x, y, steps: int) -> float:
    t0 = time.thread_time()
    for i in range(steps):
        fn(x[i % len(x)], y[i % len(y)])
    return (time.thread_time() - t0) / steps


def full_plan(graph, lr: float):
    plan = api.plan(graph, None, "full").plan
    return plan.__class__(**{**plan.__dict__, "optimizer": plan.optimizer.__class__(lr=lr)})


def bench(name: str, graph, x: np.ndarray, y: np.ndarray, rounds: int, steps: int, lr: float) -> None:
    plan = full_plan(graph, lr)
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


PROFILE_H = r"""/* MT_PROFILE hook of benchmarks/train_step_speed.py: thread CPU time per kernel id. */
void mt_bench_add(const char *id, double seconds);
double mt_bench_now(void);
extern double mt_bench_t0;
#define MT_PROFILE_BEGIN(id) (mt_bench_t0 = mt_bench_now())
#define MT_PROFILE_END(id) mt_bench_add(#id, mt_bench_now() - mt_bench_t0)
"""

PROFILE_MAIN = r"""#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "mt_model.h"
double mt_bench_t0;
static const char *names[64];
static double total[64];
static int n;
double mt_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
void mt_bench_add(const char *id, double seconds)
{
    int i = 0;
    while (i < n && strcmp(names[i], id) != 0)
        ++i;
    if (i == n && n < 64)
        names[n++] = id;
    total[i] += seconds;
}
int main(void)
{
    static float x[MT_INPUT_NUMEL], t[MT_TARGET_NUMEL];
    const int steps = 100;
    mt_stats_t st;
    for (unsigned i = 0; i < MT_INPUT_NUMEL; ++i)
        x[i] = (float)(i % 256u);
    t[0] = 1.0f;
    mt_init();
    for (int i = 0; i < 5; ++i)
        mt_train_step(x, t, 0, &st);
    memset(total, 0, sizeof total);
    const double t0 = mt_bench_now();
    for (int i = 0; i < steps; ++i)
        mt_train_step(x, t, 0, &st);
    printf("step %.6f\n", (mt_bench_now() - t0) / steps * 1e3);
    for (int i = 0; i < n; ++i)
        printf("%s %.6f\n", names[i], total[i] / steps * 1e3);
    return 0;
}
"""


def profile(graph, lr: float) -> None:
    """CPU ms per kernel id in one step of each build, and their ratio."""
    with tempfile.TemporaryDirectory() as d:
        emit(graph, full_plan(graph, lr), d)
        (Path(d) / "mt_profile.h").write_text(PROFILE_H)
        (Path(d) / "prof_main.c").write_text(PROFILE_MAIN)
        ms: dict[str, dict[str, float]] = {}
        for build, lib, var in (
            ("portable", "libmt.so", "CFLAGS=-O2 -DMT_PROFILE"),
            ("fast", "libmt_fast.so", "FAST_CFLAGS=-O3 -march=native -DMT_PROFILE"),
        ):
            subprocess.run(["make", "-s", "-B", "-C", d, lib, var], check=True, capture_output=True)
            exe = str(Path(d) / f"prof_{build}")
            cmd = ["cc", "-O2", "-I", d, "-o", exe, str(Path(d) / "prof_main.c"), str(Path(d) / lib)]
            subprocess.run([*cmd, f"-Wl,-rpath,{d}", "-rdynamic"], check=True)
            out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
            ms[build] = {k: float(v) for k, v in (line.split() for line in out.splitlines())}
    print(f"\n{'ResNet-8, CPU ms':<22} {'portable':>9} {'fast':>9} {'ratio':>7}")
    for k in sorted(ms["portable"], key=lambda k: (k != "step", -ms["portable"][k])):
        p, f = ms["portable"][k], ms["fast"].get(k, 0.0)
        if p >= 0.005 or f >= 0.005:
            print(f"{k:<22} {p:>9.3f} {f:>9.3f} {p / f if f else float('nan'):>6.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--profile", action="store_true", help="also split a ResNet-8 step by kernel")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print("CPU ms per step (median over rounds); speed-up = PyTorch / C, median (min-max) over rounds")
    print(
        f"{'model':<18} {'portable C':>11} {'fast C':>9} {'PyTorch':>9} "
        f"{'portable speed-up':>20} {'fast speed-up':>20}"
    )
    hp = api.load(shared_path("models", "st_handposture_vl53l5cx_cnn2d_float.tflite"))
    x = rng.standard_normal((64, 2, 8, 8)).astype(np.float32)
    y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 64)]
    bench("hand-posture CNN", hp, x, y, args.rounds, args.steps * 10, 0.01)
    rn = api.load(shared_path("models", "mlperf_tiny_resnet8_cifar10_float.tflite"))
    d = np.load(shared_path("datasets", "cifar10_test_1000.npz"))
    x = d["x"][:64].transpose(0, 3, 1, 2).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[d["y"][:64]]
    bench("MLPerf ResNet-8", rn, x, y, args.rounds, max(5, args.steps // 5), 1e-7)
    if args.profile:
        profile(rn, 1e-7)


if __name__ == "__main__":
    main()
