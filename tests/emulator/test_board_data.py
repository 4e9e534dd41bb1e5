"""Board descriptions (board.toml) and the QEMU command line: pure Python, no toolchain needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mcutrain
from mcutrain.boards.qemu import QemuError, SerialTcp, free_tcp_port, qemu_command
from mcutrain.boards.targets import TargetError, firmware_dir, list_targets, load_target
from mcutrain.core.units import parse_bytes

ALL_BOARDS = [
    "gap9",
    "gap9-rv32-qemu",
    "mps2-an386",
    "mps2-an500",
    "mps3-an547",
    "nrf52840",
    "rv32-qemu",
    "stm32f746g-disco",
]
_MEMORY_LINE = re.compile(
    r"^\s*(\w+)\s*\([rwx!]+\)\s*:\s*ORIGIN\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*LENGTH\s*=\s*(\d+[KM]?)",
    re.MULTILINE,
)


def test_firmware_dir_is_the_repositorys_in_a_source_checkout() -> None:
    bundled = Path(mcutrain.__file__).parent / "_firmware"
    expected = bundled if bundled.is_dir() else Path(mcutrain.__file__).resolve().parents[1] / "firmware"
    assert firmware_dir() == expected
    assert (firmware_dir() / "include" / "mt_board.h").is_file()


def test_all_boards_are_listed() -> None:
    assert list_targets() == ALL_BOARDS


@pytest.mark.parametrize("name", ALL_BOARDS)
def test_linker_script_memory_matches_board_toml(name: str) -> None:
    """board.toml and link.ld describe the same memory map, and agree on flash and RAM."""
    target = load_target(name)
    script = target.linker_script.read_text()
    memory = {m[0]: (int(m[1], 0), parse_bytes(m[2])) for m in _MEMORY_LINE.findall(script)}
    assert memory == {r.name: (r.origin, r.length) for r in target.regions}
    aliases = dict(re.findall(r'REGION_ALIAS\("(\w+)",\s*(\w+)\)', script))
    assert aliases == {"MT_FLASH": target.flash_region, "MT_RAM": target.ram_region}
    assert "INCLUDE sections.ld" in script


@pytest.mark.parametrize("name", ALL_BOARDS)
def test_board_fields(name: str) -> None:
    t = load_target(name)
    assert t.flash.length > 0 and t.ram.length > t.stack_bytes > 0
    assert t.ram_budget_bytes == t.ram.length - t.stack_bytes
    assert all(p.is_file() for p in (*t.sources, t.linker_script))
    assert t.runs_in_qemu == (t.runs_on == "qemu")
    defines = t.c_defines()
    assert defines["MT_BOARD_NAME"] == f'"{name}"'
    assert defines["MT_BOARD_EXIT_SEMIHOSTING"] == ("1" if t.exit_method == "semihosting" else "0")
    if t.arch == "arm":
        assert t.toolchain_prefix == "arm-none-eabi-" and "-mfloat-abi=hard" in t.cflags
    else:
        assert t.counter == "minstret" and t.instret_resolution == 1


def test_known_memory_maps() -> None:
    assert (load_target("stm32f746g-disco").ram.length, load_target("stm32f746g-disco").flash.length) == (
        320 * 1024,
        1024 * 1024,
    )
    assert load_target("nrf52840").ram.length == 256 * 1024
    assert load_target("mps3-an547").ram.origin == 0x20000000
    assert load_target("mps2-an386").instret_resolution == 40  # 25 MHz SysTick, 1 ns per instruction
    assert load_target("mps3-an547").instret_resolution == 32  # 32 MHz: 31.25 ns, rounded up


def test_unknown_target_names_the_known_ones() -> None:
    with pytest.raises(TargetError, match=r"unknown target 'nope'.*mps2-an386"):
        load_target("nope")


@pytest.mark.parametrize(("text", "value"), [("16K", 16384), ("4M", 4 << 20), ("320KiB", 327680), (512, 512)])
def test_parse_bytes(text: str | int, value: int) -> None:
    assert parse_bytes(text) == value


def test_qemu_command_arm() -> None:
    cmd = qemu_command(load_target("mps2-an386"), "app.elf")
    assert cmd == [
        "qemu-system-arm",
        "-M",
        "mps2-an386",
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-serial",
        "stdio",
        "-kernel",
        "app.elf",
        "-icount",
        "shift=0",
    ]


def test_qemu_command_rv32_with_tcp_serial() -> None:
    port = free_tcp_port()
    assert 0 < port < 65536
    cmd = qemu_command(load_target("rv32-qemu"), "app.elf", icount=False, serial=SerialTcp(port))
    assert cmd[:4] == ["qemu-system-riscv32", "-M", "virt", "-nographic"]
    assert cmd[6:8] == ["-bios", "none"]
    assert cmd[cmd.index("-serial") + 1] == f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"
    assert "-icount" not in cmd
    nagle = qemu_command(
        load_target("rv32-qemu"), "app.elf", icount=False, serial=SerialTcp(port, nodelay=False)
    )
    assert nagle[nagle.index("-serial") + 1] == f"tcp:127.0.0.1:{port},server=on,wait=on"
    assert SerialTcp(port).url == f"socket://127.0.0.1:{port}"


def test_hardware_board_has_no_qemu_command() -> None:
    with pytest.raises(QemuError, match="runs on hardware only"):
        qemu_command(load_target("nrf52840"), "app.elf")
