"""Board support packages built with the real cross compilers and run in QEMU.

Every QEMU board runs tests/emulator/programs/hello.c (UART, FPU math, instruction counter, stack
measurement); the hardware-only boards are built and size-checked. Further programs check the
clear errors: a RAM overflow at link time, a hang killed at the timeout, a fault reported by the
board, and the serial receive path over QEMU's TCP serial.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import serial
from conftest import require_board

from mcutrain.boards.cross_build import BuildError, BuildResult, build
from mcutrain.boards.qemu import FirmwareTimeout, QemuProcess, SerialTcp, free_tcp_port, run_qemu
from mcutrain.boards.targets import Target, list_targets, load_target

pytestmark = pytest.mark.emulator

PROGRAMS = Path(__file__).parent / "programs"
QEMU_BOARDS = [n for n in list_targets() if load_target(n).runs_in_qemu]
# boards that mcutrain builds (gap9 builds with the GAP SDK: tests/emulator/test_gap9.py)
HARDWARE_BOARDS = [
    n for n in list_targets() if not load_target(n).runs_in_qemu and load_target(n).build_system == "mcutrain"
]
LOOP_N = 100_000
RUN_TIMEOUT_S = 20.0
MT_BOARD_EXIT_FAULT = 250


def _build(target: Target, program: str, out: Path, **defines: int) -> BuildResult:
    return build(target, [PROGRAMS / program], out_dir=out, defines=defines)


def _loop_counts(stdout: str) -> dict[int, int]:
    return {int(n): int(i) for n, i in re.findall(r"loop n=(\d+) instret=(\d+)", stdout)}


# ---- hello on every QEMU board -------------------------------------------------------------------


@pytest.fixture(scope="module", params=QEMU_BOARDS)
def hello(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Builds hello.c with exit codes 0 and 3, runs the first twice and the second once."""
    target = load_target(request.param)
    require_board(target)
    out = tmp_path_factory.mktemp(target.name)
    elf0 = _build(target, "hello.c", out / "exit0", HELLO_EXIT_CODE=0, HELLO_LOOP_N=LOOP_N).elf
    elf3 = _build(target, "hello.c", out / "exit3", HELLO_EXIT_CODE=3, HELLO_LOOP_N=LOOP_N).elf
    return {
        "target": target,
        "run0": run_qemu(target, elf0, timeout_s=RUN_TIMEOUT_S),
        "run0_again": run_qemu(target, elf0, timeout_s=RUN_TIMEOUT_S),
        "run3": run_qemu(target, elf3, timeout_s=RUN_TIMEOUT_S),
    }


def test_exit_status_is_mains_return_value(hello: dict) -> None:
    assert hello["run0"].check(0).exit_code == 0
    assert hello["run3"].check(3).exit_code == 3


def test_uart_output_and_fpu_math(hello: dict) -> None:
    out = hello["run3"].stdout
    assert f"hello from {hello['target'].name}\n" in out
    assert "math: expf=1.648721 tanhf=0.462117 sqrtf=1.414214 powf=0.125000 ok\n" in out
    assert out.rstrip().endswith("exit 3")


def test_instruction_count_is_deterministic(hello: dict) -> None:
    first, second = hello["run0"].stdout, hello["run0_again"].stdout
    assert _loop_counts(first), first
    assert first == second  # counts, stack use, everything


def test_instruction_count_is_linear_in_the_loop_count(hello: dict) -> None:
    target: Target = hello["target"]
    counts = _loop_counts(hello["run0"].stdout)
    n1, n2 = LOOP_N, 2 * LOOP_N
    # counted_loop() executes 2 instructions per iteration; the code around it is the same twice.
    delta = counts[n2] - counts[n1]
    assert abs(delta - 2 * (n2 - n1)) <= target.instret_resolution, counts
    if target.instret_resolution == 1:
        assert delta == 2 * (n2 - n1)
    overhead = counts[n1] - 2 * n1
    assert 0 <= overhead <= 200 + 2 * target.instret_resolution, counts
    assert f"instret_resolution={target.instret_resolution}\n" in hello["run0"].stdout


def test_stack_use_is_measured(hello: dict) -> None:
    m = re.search(r"stack used=(\d+) of (\d+)", hello["run0"].stdout)
    assert m is not None
    used, size = int(m[1]), int(m[2])
    assert size == hello["target"].stack_bytes
    assert 1024 < used < size  # stack_user() has a 1 KiB local array


def test_systick_wraps_are_counted(tmp_path: Path) -> None:
    """SysTick is 24 bits wide (a wrap every 0.67 s at 25 MHz); with a 1024-tick period the loop
    spans dozens of wraps, and the 64-bit count must still agree with the single-period run up
    to the few instructions of each wrap interrupt."""
    target = load_target("mps2-an386")
    require_board(target)
    runs = {}
    for reload in (0xFFFFFF, 0x3FF):
        elf = _build(
            target, "hello.c", tmp_path / f"r{reload}", HELLO_LOOP_N=LOOP_N, MT_CORTEXM_SYSTICK_RELOAD=reload
        ).elf
        runs[reload] = _loop_counts(run_qemu(target, elf, timeout_s=RUN_TIMEOUT_S).check(0).stdout)
    period = 1024 * target.instret_resolution  # instructions per wrap
    for n, count in runs[0x3FF].items():
        wraps = count // period
        assert wraps >= 4
        assert 0 <= count - runs[0xFFFFFF][n] <= 20 * wraps + target.instret_resolution, (runs, n)


# ---- hardware-only boards: build and size ------------------------------------------------------------


@pytest.mark.parametrize("name", HARDWARE_BOARDS)
def test_hardware_board_builds_and_fits(name: str, tmp_path: Path) -> None:
    target = load_target(name)
    require_board(target, qemu=False)
    result = _build(target, "hello.c", tmp_path, HELLO_EXIT_CODE=0)
    size = result.size
    assert 0 < size.flash_bytes <= size.flash_capacity == target.flash.length
    assert size.stack_bytes == target.stack_bytes
    assert size.ram_bytes == size.stack_bytes + size.data_bytes + size.bss_bytes <= target.ram.length
    # The vector table comes first in flash, and our numbers agree with the linker's own table.
    text = next(s for s in size.sections if s.name == ".text")
    assert text.vma == target.flash.origin
    usage = {m[0]: int(m[1]) for m in re.findall(r"^\s*(\w+):\s+(\d+) B", result.memory_usage, re.M)}
    assert usage[target.flash.name] == size.flash_bytes
    assert usage[target.ram.name] == size.ram_bytes


# ---- memory budget -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mps2-an386", "nrf52840"])
def test_too_big_static_buffer_fails_with_both_numbers(name: str, tmp_path: Path) -> None:
    target = load_target(name)
    require_board(target, qemu=False)
    big = target.ram.length  # a RAM-sized arena plus the stack cannot fit
    with pytest.raises(BuildError) as err:
        _build(target, "big_buffer.c", tmp_path, BIG_BYTES=big)
    message = str(err.value)
    m = re.search(r"needs (\d+) bytes of RAM but region (\w+) has (\d+) bytes", message)
    assert m is not None, message
    assert int(m[1]) > big + target.stack_bytes
    assert (m[2], int(m[3])) == (target.ram.name, target.ram.length)


def test_buffer_within_the_ram_budget_links(tmp_path: Path) -> None:
    target = load_target("nrf52840")
    require_board(target, qemu=False)
    big = target.ram_budget_bytes - 1024  # the board runtime needs well under 1 KiB
    size = _build(target, "big_buffer.c", tmp_path, BIG_BYTES=big).size
    assert big < size.bss_bytes and size.ram_bytes <= target.ram.length


# ---- timeouts, faults --------------------------------------------------------------------------------


def _process_group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("name", ["mps2-an386", "rv32-qemu"])
def test_hang_is_killed_at_the_timeout(name: str, tmp_path: Path) -> None:
    target = load_target(name)
    require_board(target)
    elf = _build(target, "hang.c", tmp_path).elf
    with QemuProcess(target, elf) as q:
        result = q.wait(timeout_s=1.0)
        pid = q.proc.pid
    assert result.timed_out and result.exit_code is None
    assert 1.0 <= result.wall_s < 5.0
    assert result.message == "firmware did not finish within 1 s: killed"
    assert "hanging" in result.stdout
    assert _process_group_gone(pid)
    with pytest.raises(FirmwareTimeout, match="did not finish within 1 s: killed"):
        result.check()


@pytest.mark.parametrize(
    ("name", "kind", "report"),
    [
        ("mps2-an386", 1, r"\[mt_board\] fault: exception 3 "),  # HardFault (escalated UsageFault)
        ("mps3-an547", 2, r"fault: exception 3 CFSR=0x00100000 .*\(stack overflow: MSPLIM\)"),
        ("rv32-qemu", 1, r"\[mt_board\] fault: trap mcause=0x00000003 "),  # breakpoint
    ],
)
def test_fault_is_reported_with_exit_status(name: str, kind: int, report: str, tmp_path: Path) -> None:
    target = load_target(name)
    require_board(target)
    elf = _build(target, "fault.c", tmp_path, FAULT_KIND=kind).elf
    result = run_qemu(target, elf, timeout_s=RUN_TIMEOUT_S)
    assert result.exit_code == MT_BOARD_EXIT_FAULT, result.stdout + result.stderr
    assert re.search(report, result.stdout), result.stdout


# ---- serial link over TCP ----------------------------------------------------------------------------


def _open_link(link: SerialTcp, deadline_s: float = 10.0) -> serial.SerialBase:
    """pyserial on QEMU's TCP serial; retried until QEMU listens."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return serial.serial_for_url(link.url, timeout=5.0)
        except serial.SerialException:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("name", ["mps2-an386", "rv32-qemu"])
def test_serial_tcp_round_trip(name: str, tmp_path: Path) -> None:
    target = load_target(name)
    require_board(target)
    elf = _build(target, "echo.c", tmp_path).elf
    link = SerialTcp(free_tcp_port())
    with QemuProcess(target, elf, serial=link) as q:
        with _open_link(link) as port:
            assert port.read_until(b"ready\n").endswith(b"ready\n")
            port.write(b"hello board\n")
            echoed = port.read_until(b"done\n")
        result = q.wait(timeout_s=RUN_TIMEOUT_S)
    assert b"HELLO BOARD\ndone\n" in echoed, echoed
    assert result.exit_code == len("hello board"), result.stderr
