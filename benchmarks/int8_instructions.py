"""Instructions per MAC of the int8 conv2d and linear forwards on real models: the portable reference
kernel and the kernel the board's build selects (the DSP kernel on Cortex-M4/M7) side by side, in QEMU
(exact counts under -icount).

Run:  .venv/bin/python benchmarks/int8_instructions.py [--board mps2-an386] [--models kws,vww]
      [--col-bytes 4096]

One firmware per model holds every conv2d and linear layer of the full-integer model
(../shared/data/models) with its real int8 weights, int32 biases and integer parameters, as the code
generator emits them (:mod:`mcutrain.core.int8_tables`), and a random int8 input of the layer's shape.
For each layer it times ``mt_conv2d_fw_s8_ref`` (``mt_linear_fw_s8_ref``) and then ``mt_conv2d_fw_s8``
(``mt_linear_fw_s8``), the call the generated training step makes, with ``mt_board_instret()`` around
``repeat`` calls each (SysTick on mps2-an386: exact to 40 instructions, so layers repeat until a
measurement is at least 100,000 instructions), and checks that both outputs are equal byte for byte (the
exit status counts the layers that differ). Prints a row per layer and a summary per model and layer kind
(conv: every non-depthwise convolution, of which pointwise: 1x1; depthwise; linear).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcutrain import api
from mcutrain.boards.cross_build import build
from mcutrain.boards.qemu import run_qemu
from mcutrain.boards.targets import load_target
from mcutrain.core import ir
from mcutrain.core.int8_scratch import S8_COL_BYTES, col_bytes_problem, conv2d_s8_scratch_bytes
from mcutrain.core.int8_tables import ConstArray, int8_data
from mcutrain.core.layout import c_ident
from mcutrain.core.op_table import entry
from mcutrain.data.shared import shared_data_dir, shared_path
from mcutrain.emit.c_text import c_int, c_int_array

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "firmware" / "runtime"
MODELS = {
    "kws": "mlperf_kws_dscnn_int8",
    "vww": "mlperf_vww_mobilenetv1_int8",
    "micro_speech": "tflm_micro_speech_int8",
    "hello_world": "tflm_hello_world_int8",
}
MIN_COUNT = 100_000  # instructions per measurement (SysTick resolution 40: 0.04%)


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # conv, pointwise, depthwise, linear
    macs: int
    call: str  # the kernel call with "{fn}" for the kernel's name and "{y}" for the output
    out_bytes: int
    repeat: int
    scratch: int = 0  # conv2d: the DSP path's scratch bytes (mcutrain.core.int8_scratch)


def _kind(op: ir.Op, in_shape: tuple[int, ...]) -> str:
    if isinstance(op, ir.Linear):
        return "linear"
    assert isinstance(op, ir.Conv2d)
    if op.groups > 1 and op.groups == in_shape[0]:
        return "depthwise"
    return "pointwise" if op.kernel == (1, 1) else "conv"


def _array(a: ConstArray) -> str:
    return f"static const {a.ctype} {a.name}[{a.values.size}] = {{\n{c_int_array(a.values, a.ctype)}\n}};"


def program(graph: ir.Graph, seed: int = 0, col_bytes: int = S8_COL_BYTES) -> tuple[str, list[Layer]]:
    """The C source of the benchmark firmware of ``graph`` and its layers."""
    rng = np.random.default_rng(seed)
    decls: list[str] = []
    layers: list[Layer] = []
    scratch = 4
    for node in graph.nodes:
        if not isinstance(node.op, (ir.Conv2d, ir.Linear)):
            continue
        data = int8_data(graph, node)
        base = c_ident(node.name)
        decls += [_array(a) for a in data.arrays]
        st = data.struct
        assert st is not None
        fields = ", ".join(v if isinstance(v, str) else c_int(int(v)) for _, v in st.fields)
        decls.append(f"static const {st.ctype} {st.name} = {{{fields}}};")
        ins, out = graph.in_shapes(node), graph.shapes[node.name]
        dims = entry(node.op).dims
        assert dims is not None
        dvals = dims.of(node.op, ins, out)
        decls.append(f"static const {dims.ctype} {base}_dims = {{{', '.join(map(str, dvals.values()))}}};")
        x = rng.integers(-128, 128, math.prod(ins[0]), dtype=np.int8)
        decls.append(f"static const int8_t {base}_x[{x.size}] = {{\n{c_int_array(x, 'int8_t')}\n}};")
        macs = node.op.macs(ins, out)
        kind = _kind(node.op, ins[0])
        a = data.args
        need = conv2d_s8_scratch_bytes(dvals, col_bytes) if kind != "linear" else 0
        scratch = max(scratch, need)
        call = f"{{fn}}(&{base}_dims, {a['q']}, 0, {a['co_end']}, {base}_x, {a['w']}, {a['b']}, {{y}}"
        repeat = max(1, math.ceil(MIN_COUNT / macs))
        layers.append(Layer(node.name, kind, macs, call, math.prod(out), repeat, need))
    n_out = max(la.out_bytes for la in layers)
    body = []
    for i, la in enumerate(layers):
        stem = "mt_linear_fw_s8" if la.kind == "linear" else "mt_conv2d_fw_s8"
        ref = la.call.format(fn=stem + "_ref", y="y_ref") + ")"
        fast = la.call.format(fn=stem, y="y_fast") + ", (int8_t *)scratch)"
        if la.kind != "linear":  # the C's scratch size is the mirror's (the buffer below is sized by it)
            body.append(
                f"    if (mt_conv2d_fw_s8_scratch_bytes(&{c_ident(la.name)}_dims) != {la.scratch}u) {{\n"
                f'        printf("layer {i}: scratch differs from the mirror\\n");\n'
                "        return 100;\n    }"
            )
        body.append(
            f"    t0 = mt_board_instret();\n"
            f"    for (int r = 0; r < {la.repeat}; ++r) {{\n        {ref};\n    }}\n"
            f"    t1 = mt_board_instret();\n"
            f"    for (int r = 0; r < {la.repeat}; ++r) {{\n        {fast};\n    }}\n"
            f"    t2 = mt_board_instret();\n"
            f"    same = memcmp(y_ref, y_fast, {la.out_bytes}u) == 0;\n"
            f"    bad += !same;\n"
            f'    printf("layer {i} ref %lu fast %lu same %d\\n", (unsigned long)(t1 - t0), '
            f"(unsigned long)(t2 - t1), same);"
        )
    src = (
        '#include <stdio.h>\n#include <string.h>\n#include "mt_board.h"\n#include "mt_kernels_s8.h"\n'
        '#include "mt_s8_dsp.h"\n\n'
        + "\n".join(decls)
        + f"\n\nstatic int8_t y_ref[{n_out}], y_fast[{n_out}];\n"
        + f"static uint32_t scratch[{(scratch + 3) // 4}];\n\n"
        + "int main(void)\n{\n    int bad = 0, same;\n    uint64_t t0, t1, t2;\n"
        + "    t0 = mt_board_instret(); /* the first interval after start-up reads high on mps2-an386 */\n"
        + "    for (volatile int r = 0; r < 1000; ++r) {\n    }\n    t1 = mt_board_instret();\n"
        + "\n".join(body)
        + '\n    printf("layers differing: %d\\n", bad);\n    return bad;\n}\n'
    )
    return src, layers


@dataclass(frozen=True)
class Result:
    layer: Layer
    ref: float  # instructions per call
    fast: float
    same: bool


def measure(model: str, board: str, root: Path, col_bytes: int = S8_COL_BYTES) -> list[Result]:
    graph = api.load(shared_path("models", f"{MODELS[model]}.tflite"))
    src, layers = program(graph, col_bytes=col_bytes)
    out = root / board / model
    out.mkdir(parents=True, exist_ok=True)
    (out / "main.c").write_text(src)
    sources = [out / "main.c", *sorted((RUNTIME / "src").glob("*_s8.c"))]
    target = load_target(board)
    incs = [RUNTIME / "include", RUNTIME / "src"]
    res = build(
        target, sources, include_dirs=incs, out_dir=out / "build", defines={"MT_S8_COL_BYTES": col_bytes}
    )
    run = run_qemu(target, res.elf, timeout_s=600.0)
    rows = {
        int(m[1]): (int(m[2]), int(m[3]), m[4] == "1")
        for m in re.finditer(r"^layer (\d+) ref (\d+) fast (\d+) same (\d)$", run.stdout, re.MULTILINE)
    }
    if len(rows) != len(layers):
        raise SystemExit(f"{model} on {board}: {len(rows)} of {len(layers)} layers ran\n{run.stdout[-3000:]}")
    return [
        Result(la, rows[i][0] / la.repeat, rows[i][1] / la.repeat, rows[i][2]) for i, la in enumerate(layers)
    ]


def print_model(model: str, board: str, results: list[Result]) -> None:
    print(f"\n== {MODELS[model]} on {board}: instructions per MAC, reference | selected kernel")
    print(f"  {'layer':<28} {'kind':<10} {'MACs':>9} {'reference':>10} {'selected':>9} {'equal':>6}")
    for r in results:
        la = r.layer
        print(
            f"  {la.name:<28} {la.kind:<10} {la.macs:>9,} {r.ref / la.macs:>10.2f} {r.fast / la.macs:>9.3f} "
            f"{'yes' if r.same else 'NO':>6}"
        )


def summary(board: str, all_results: dict[str, list[Result]]) -> None:
    """A markdown table: per model and layer kind, MACs and instructions per MAC of both kernels."""
    print(f"\n== summary on {board} (instructions per MAC, summed over the layers of a kind)\n")
    print("| model | layers | MACs | reference | selected | speed-up |\n|---|---|---|---|---|---|")
    groups = {
        "conv (all but depthwise)": ("conv", "pointwise"),
        "of which pointwise": ("pointwise",),
        "depthwise": ("depthwise",),
        "linear": ("linear",),
        "conv2d_fw (conv + depthwise)": ("conv", "pointwise", "depthwise"),
    }
    for model, results in all_results.items():
        for label, kinds in groups.items():
            rs = [r for r in results if r.layer.kind in kinds]
            if not rs:
                continue
            macs = sum(r.layer.macs for r in rs)
            ref, fast = sum(r.ref for r in rs), sum(r.fast for r in rs)
            cells = [
                MODELS[model],
                f"{label} ({len(rs)})",
                f"{macs:,}",
                f"{ref / macs:.2f}",
                f"{fast / macs:.3f}",
            ]
            print("| " + " | ".join([*cells, f"{ref / fast:.1f}x"]) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--board", default="mps2-an386", help="a QEMU board")
    ap.add_argument("--models", default="kws,vww", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--out", help="keep the programs here (default: a temporary folder)")
    ap.add_argument(
        "--col-bytes",
        type=int,
        default=S8_COL_BYTES,
        help=f"the DSP conv2d column-tile budget, MT_S8_COL_BYTES (default {S8_COL_BYTES})",
    )
    args = ap.parse_args()
    if problem := col_bytes_problem(args.col_bytes):
        ap.error(problem)
    if not (d := shared_data_dir()) or not d.is_dir():
        print("needs the real models of ../shared/data (or MCUTRAIN_SHARED_DATA)", file=sys.stderr)
        return 2
    root = Path(args.out or tempfile.mkdtemp(prefix="mt-int8-bench-"))
    results = {}
    for m in args.models.split(","):
        results[m] = measure(m.strip(), args.board, root, args.col_bytes)
        print_model(m, args.board, results[m])
    summary(args.board, results)
    return 1 if any(not r.same for rs in results.values() for r in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
