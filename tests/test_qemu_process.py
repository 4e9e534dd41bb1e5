"""QEMU's process lifetime: a host that dies (even by SIGKILL) takes its guest with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

CHILD = textwrap.dedent(
    """
    import sys, time
    import mcutrain.boards.qemu as q
    from mcutrain.boards.targets import load_target
    q.qemu_command = lambda *a, **k: ["sleep", "120"]  # stands in for qemu-system-*: any long-lived program
    p = q.QemuProcess(load_target("mps2-an386"), sys.executable)
    print(p.proc.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_guest_dies_with_a_killed_host():
    host = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        guest = int(host.stdout.readline())
        assert _alive(guest)
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(guest) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(guest), "the guest outlived its host"
    finally:
        host.kill()
        host.stdout.close()
