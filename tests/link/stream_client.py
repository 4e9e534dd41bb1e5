"""A host process that streams the deterministic samples of harness.make_sample to a device.

    python tests/link/stream_client.py URL COUNT [SEED] [TIMEOUT]

Connects (HELLO), resumes after the last sample the device applied, sends samples up to COUNT - 1
with training, prints one line per acknowledged sample and "done" at the end. The tests kill it
with SIGKILL in the middle and start it again.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from link.harness import make_sample
from mcutrain.host.link import Link


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 0.2
    with Link(url, timeout=timeout, retries=10) as link:
        assert link.info is not None
        start = link.info.next_sample_id
        print(f"resume at {start}", flush=True)
        for i in range(start, count):
            ack = link.sample(make_sample(i, seed))
            print(f"ack {i} seq {ack.seq} dup {int(ack.duplicate)}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
