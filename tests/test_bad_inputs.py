"""Bad input, tried systematically on every verb of the command line.

Each case runs ``mcutrain`` in process (as ``mcutrain.cli.main``) with one thing wrong: a corrupt or
truncated model, an unknown op or type, an impossible budget, broken calibration data, a stale or foreign
plan, an output folder that cannot take the project, a missing toolchain, a closed port, a device of
another model, samples of the wrong shape. Each must end with exit status 1 or 2 and one
``mcutrain VERB: error: ...`` line that names the file or value and what is wrong: no traceback, and no
half-written output left behind.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, require_shared, require_tools
from graphs import small_cnn

from mcutrain.cli import main

HANDPOSTURE = MODELS / "st_handposture_vl53l5cx_cnn2d_float.tflite"


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # tmp_path -> the command line (after preparing its files)
    message: str  # must appear in the error line
    verb: str = ""  # the verb in "mcutrain VERB: error:" (default: argv[0])
    needs: tuple[str, ...] = ()  # "shared", "arm"
    leaves_nothing: str = ""  # a path (relative to tmp_path) that must not exist afterwards


def _cnn(tmp: Path) -> str:
    p = tmp / "cnn.json"
    p.write_text(small_cnn().to_json())
    return str(p)


def _write(tmp: Path, name: str, data: bytes) -> str:
    p = tmp / name
    p.write_bytes(data)
    return str(p)


def _calib(tmp: Path, **arrays: np.ndarray) -> str:
    np.savez(tmp / "calib.npz", **arrays)
    return str(tmp / "calib.npz")


def _good_calib(tmp: Path, n: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 2, 8, 8)).astype(np.float32), "y": rng.integers(0, 8, n)}


def _plan(tmp: Path, *extra: str, model: str | None = None) -> str:
    out = tmp / "plan.json"
    rc = main(["plan", model or _cnn(tmp), "--strategy", "last-layer", "--out", str(out), *extra])
    assert rc == 0
    return str(out)


def _tampered(tmp: Path, edit: Callable[[dict], None]) -> str:
    p = Path(_plan(tmp))
    d = json.loads(p.read_text())
    edit(d)
    p.write_text(json.dumps(d))
    return str(p)


def _pt2(tmp: Path) -> str:
    import torch
    from torch import nn

    m = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    torch.export.save(torch.export.export(m, (torch.zeros(1, 16),)), tmp / "mlp.pt2")
    return str(tmp / "mlp.pt2")


def _truncated(tmp: Path, src: str, name: str) -> str:
    data = Path(src).read_bytes()
    return _write(tmp, name, data[: len(data) // 2])


def _project_dir(tmp: Path) -> str:
    d = tmp / "user_files"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    return str(d)


def _no_arm_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    keep = [d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "arm-none-eabi-gcc").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(keep))


CASES = [
    # ---- models: every verb that reads one
    Case(
        "corrupt tflite",
        lambda t: ["plan", _write(t, "m.tflite", b"\x00junk" * 64), "--budget", "8KB"],
        "m.tflite",
    ),
    Case("empty tflite", lambda t: ["plan", _write(t, "e.tflite", b""), "--budget", "8KB"], "e.tflite"),
    Case(
        "truncated tflite",
        lambda t: ["inspect", _truncated(t, str(HANDPOSTURE), "half.tflite")],
        "half.tflite",
        needs=("shared",),
    ),
    Case("missing model", lambda t: ["plan", str(t / "nope.tflite"), "--budget", "8KB"], "does not exist"),
    Case("folder as model", lambda t: ["inspect", str(t)], "cannot tell what kind of model"),
    Case(
        "corrupt pt2", lambda t: ["plan", _write(t, "m.pt2", b"PK\x03\x04junk"), "--budget", "8KB"], "m.pt2"
    ),
    Case(
        "truncated pt2",
        lambda t: ["plan", _truncated(t, _pt2(t), "half.pt2"), "--strategy", "full"],
        "half.pt2",
    ),
    Case("zip that is no pt2", lambda t: ["inspect", _zip(t)], "other.pt2"),
    Case(
        "unknown op kind",
        lambda t: ["inspect", _write(t, "g.json", _graph_with_op("lstm"))],
        "unknown op kind 'lstm'",
    ),
    Case(
        "malformed graph json",
        lambda t: ["inspect", _write(t, "g.json", b'{"format": "mcutrain-graph/1"')],
        "g.json",
    ),
    Case(
        "uint8 model",
        lambda t: ["plan", _retyped(t, "uint8.tflite"), "--budget", "64KB"],
        "uint8 (legacy asymmetric quantization)",
        needs=("shared",),
    ),
    Case("lstm in pytorch", lambda t: ["inspect", "bad_models:lstm", "--input-shape", "1,5,8"], "lstm"),
    Case("unknown built-in", lambda t: ["plan", "nonsense_model", "--budget", "8KB"], "built-in model"),
    Case("factory without shape", lambda t: ["plan", "bad_models:mlp"], "input shape"),
    Case(
        "factory shape without batch",
        lambda t: ["plan", "bad_models:mlp", "--input-shape", "16"],
        "batch axis",
    ),
    Case(
        "factory bad shape",
        lambda t: ["plan", "bad_models:mlp", "--input-shape", "1,a"],
        "cannot read a shape",
    ),
    Case("factory wrong shape", lambda t: ["plan", "bad_models:mlp", "--input-shape", "1,3"], "mlp"),
    Case(
        "factory missing module",
        lambda t: ["plan", "no_such_pkg.mod:make", "--input-shape", "1,4"],
        "no_such_pkg",
    ),
    # ---- budgets
    Case(
        "budget abc", lambda t: ["plan", _cnn(t), "--budget", "abc"], "cannot read a memory size from 'abc'"
    ),
    Case("budget negative", lambda t: ["plan", _cnn(t), "--budget", "-1KB"], "-1KB"),
    Case("budget zero", lambda t: ["plan", _cnn(t), "--budget", "0"], "must be positive"),
    Case("budget 10GB", lambda t: ["plan", _cnn(t), "--budget", "10GB"], "10GB"),
    Case(
        "budget infeasible",
        lambda t: ["plan", _cnn(t), "--budget", "1KB", "--score", "proxy"],
        "Smallest budget",
    ),
    Case(
        "stack reserve too small",
        lambda t: ["plan", _cnn(t), "--strategy", "full", "--stack-reserve", "100"],
        "stack reserve",
    ),
    Case(
        "link options without app",
        lambda t: ["plan", _cnn(t), "--strategy", "full", "--val-slots", "2"],
        "--app link",
    ),
    Case(
        "too many val slots",
        lambda t: ["plan", _cnn(t), "--strategy", "full", "--app", "link", "--val-slots", "99"],
        "val_slots",
    ),
    # ---- calibration data
    Case(
        "calib missing x",
        lambda t: ["plan", _cnn(t), "--budget", "12KB", "--calib", _calib(t, y=np.zeros(4))],
        "calib.npz",
    ),
    Case(
        "calib wrong shape",
        lambda t: [
            "plan",
            _cnn(t),
            "--budget",
            "12KB",
            "--calib",
            _calib(t, x=np.zeros((4, 3, 8, 8)), y=np.zeros(4)),
        ],
        "(3, 8, 8)",
    ),
    Case(
        "calib NaN",
        lambda t: ["plan", _cnn(t), "--budget", "12KB", "--calib", _calib(t, **_nan(_good_calib(t)))],
        "NaN",
    ),
    Case(
        "calib labels out of range",
        lambda t: [
            "plan",
            _cnn(t),
            "--budget",
            "12KB",
            "--calib",
            _calib(t, x=_good_calib(t)["x"], y=np.full(16, 9)),
        ],
        "labels",
    ),
    Case(
        "calib counts differ",
        lambda t: [
            "plan",
            _cnn(t),
            "--budget",
            "12KB",
            "--calib",
            _calib(t, x=_good_calib(t)["x"], y=np.zeros(3)),
        ],
        "calib.npz",
    ),
    Case(
        "calib not npz",
        lambda t: ["plan", _cnn(t), "--budget", "12KB", "--calib", _write(t, "c.npz", b"text")],
        "c.npz",
    ),
    # ---- plan files
    Case(
        "plan file missing",
        lambda t: ["emit", str(t / "none.json"), "--out", str(t / "o")],
        "none.json",
        leaves_nothing="o",
    ),
    Case(
        "plan not json",
        lambda t: ["emit", _write(t, "p.json", b"{plan"), "--out", str(t / "o")],
        "p.json",
        leaves_nothing="o",
    ),
    Case(
        "plan other format",
        lambda t: ["emit", _write(t, "p.json", b'{"format": "x"}'), "--out", str(t / "o")],
        "not an mcutrain plan file",
    ),
    Case(
        "plan tampered memory",
        lambda t: ["emit", _tampered(t, lambda d: d["memory"].update(arena_bytes=4)), "--out", str(t / "o")],
        "records arena 4 B",
        leaves_nothing="o",
    ),
    Case(
        "plan tampered layers",
        lambda t: [
            "emit",
            _tampered(
                t,
                lambda d: d["plan"]["layers"].append(
                    {"name": "x", "update": "bias", "channels": 0, "bias": True}
                ),
            ),
            "--out",
            str(t / "o"),
        ],
        "'x'",
        leaves_nothing="o",
    ),
    Case(
        "plan tampered field",
        lambda t: ["emit", _tampered(t, lambda d: d["plan"].pop("loss")), "--out", str(t / "o")],
        "loss",
    ),
    Case(
        "plan of another model",
        lambda t: ["emit", _plan(t), "--model", "mlp", "--out", str(t / "o")],
        "plan was made for model small_cnn",
        leaves_nothing="o",
    ),
    # ---- output folders and targets
    Case(
        "emit into a folder of other files",
        lambda t: ["emit", _plan(t), "--out", _project_dir(t)],
        "user_files",
    ),
    Case("emit under a file", lambda t: ["emit", _plan(t), "--out", _write(t, "f", b"x") + "/sub"], "f/sub"),
    Case(
        "unknown board",
        lambda t: ["emit", _plan(t), "--target", "no-such-board", "--out", str(t / "o")],
        "no-such-board",
        leaves_nothing="o",
    ),
    Case(
        "firmware option on host",
        lambda t: ["emit", _plan(t), "--val-slots", "2", "--out", str(t / "o")],
        "--val-slots",
        leaves_nothing="o",
    ),
    Case(
        "fp16 on host",
        lambda t: ["emit", _plan(t), "--precision", "fp16", "--out", str(t / "o")],
        "fp16",
        leaves_nothing="o",
    ),
    Case(
        "plan too big for the board",
        lambda t: ["build", _emitted(t, "nrf52840", _plan(t, "--strategy", "full", model="depth"))],
        "nrf52840",
    ),
    Case("build a folder that is no project", lambda t: ["build", str(t)], "not a generated project"),
    Case("run a folder that is no project", lambda t: ["run", str(t)], "not a firmware project"),
    Case(
        "build without the toolchain",
        lambda t: ["build", _emitted(t, "mps2-an386")],
        "arm-none-eabi-gcc",
        needs=("no-arm",),
    ),
    # ---- the link
    Case(
        "stream to a closed port",
        lambda t: ["stream", "--port", _closed_port(), "--data", _samples(t)],
        "cannot open socket",
    ),
    Case(
        "pull from a closed port",
        lambda t: ["pull", "--port", _closed_port(), "--out", str(t / "p.npz")],
        "cannot open socket",
        leaves_nothing="p.npz",
    ),
    Case(
        "stream missing data",
        lambda t: ["stream", "--port", "{device}", "--data", str(t / "none.npz")],
        "none.npz",
        needs=("device",),
    ),
    Case(
        "stream samples of the wrong shape",
        lambda t: ["stream", "--port", "{device}", "--data", _samples(t, shape=(3, 4))],
        "samples of 12 values",
        needs=("device",),
    ),
    Case(
        "stream to a device of another model",
        lambda t: ["stream", "--port", "{device}", "--data", _samples(t), "--expect-hash", "feedface"],
        "runs model",
        needs=("device",),
    ),
    Case("monitor bad interval", lambda t: ["monitor", "--port", "loop://", "--interval", "0"], "--interval"),
    # ---- export
    Case(
        "export with params of another model",
        lambda t: [
            "export",
            _cnn(t),
            "--params",
            _params(t, model_hash="feedface"),
            "--plan",
            _plan(t),
            "--out",
            str(t / "n.json"),
        ],
        "feedface",
        leaves_nothing="n.json",
    ),
    Case(
        "export with a broken npz",
        lambda t: [
            "export",
            _cnn(t),
            "--params",
            _write(t, "p.npz", b"nope"),
            "--plan",
            _plan(t),
            "--out",
            str(t / "n.json"),
        ],
        "p.npz",
        leaves_nothing="n.json",
    ),
]


def _retyped(tmp: Path, name: str) -> str:
    """The int8 KWS model with one activation tensor turned uint8 (legacy quantization)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    m = tfl.ModelT.InitFromObj(tfl.Model.GetRootAs((MODELS / "mlperf_kws_dscnn_int8.tflite").read_bytes(), 0))
    sg = m.subgraphs[0]
    sg.tensors[int(sg.operators[1].outputs[0])].type = tfl.TensorType.UINT8
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return _write(tmp, name, bytes(b.Output()))


def _nan(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    d["x"][3, 0, 0, 0] = np.nan
    return d


def _zip(tmp: Path) -> str:
    with zipfile.ZipFile(tmp / "other.pt2", "w") as z:
        z.writestr("hello.txt", "not a program")
    return str(tmp / "other.pt2")


def _graph_with_op(kind: str) -> bytes:
    d = json.loads(small_cnn().to_json())
    d["nodes"][1]["op"] = kind
    return json.dumps(d).encode()


def _closed_port() -> str:
    from mcutrain.boards.qemu import free_tcp_port

    return f"socket://127.0.0.1:{free_tcp_port()}"


def _samples(tmp: Path, shape: tuple[int, ...] = (1, 4, 4)) -> str:
    np.savez(tmp / "s.npz", x=np.zeros((4, *shape), np.float32), y=np.zeros(4, np.int64))
    return str(tmp / "s.npz")


def _params(tmp: Path, model_hash: str) -> str:
    np.savez(
        tmp / "params.npz",
        params=np.zeros(8, np.float32),
        model_hash=np.array(model_hash),
        plan=np.array("x"),
    )
    return str(tmp / "params.npz")


def _emitted(tmp: Path, board: str, plan: str | None = None) -> str:
    assert main(["emit", plan or _plan(tmp), "--target", board, "--out", str(tmp / "fw")]) == 0
    return str(tmp / "fw")


@pytest.fixture(scope="module")
def fake_device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A fake link device (1x4x4 input, 10 classes) behind a proxy, started on demand."""
    from link import harness as h

    started: list = []

    def url() -> str:
        if not h.have("gcc"):
            pytest.skip("gcc not installed")
        exe = h.build_fake_device(tmp_path_factory.mktemp("fake"))
        dev = h.DeviceProcess(exe, "--shape", "1", "4", "4", "--target", "10", "--mask", "0")
        proxy = h.FaultProxy(dev, h.Faults())
        started.append((proxy, dev))
        return proxy.url

    yield url
    for proxy, dev in started:
        proxy.close()
        dev.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(
    case: Case,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fake_device: Callable[[], str],
) -> None:
    if "shared" in case.needs:
        require_shared("models")
    if "no-arm" in case.needs:
        require_tools("arm-none-eabi-gcc")  # the case hides it: it must be there to be hidden
    monkeypatch.chdir(tmp_path)  # a default output (plan.json) lands here, never in the checkout
    argv = case.argv(tmp_path)
    if "no-arm" in case.needs:
        _no_arm_path(monkeypatch)
    if "device" in case.needs:
        argv = [fake_device() if a == "{device}" else a for a in argv]
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors: usage line, then the error
        rc = int(e.code or 0)
    err = capsys.readouterr().err
    assert rc in (1, 2), f"exit status {rc}; stderr: {err}"
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("mcutrain ")]
    verb = case.verb or argv[0]
    assert len(lines) == 1 and lines[0].startswith(f"mcutrain {verb}: error: "), err
    assert case.message in lines[0], lines[0]
    if case.leaves_nothing:
        assert not (tmp_path / case.leaves_nothing).exists(), f"{case.leaves_nothing} was left behind"


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40
