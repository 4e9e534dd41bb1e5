"""How far the link firmware's running mean of the targets drifts over a device's lifetime of samples,
against the float32 sum it replaced (docs/depth.md, "The blend on the device").

Builds firmware/link/mt_link_blend.c on the host (the firmware's flags: -O2 -ffp-contract=off) with a
driver that feeds one zone N targets near 0.3 (0.25..0.35, xorshift32) through ``mt_blend_observe``, and
keeps a float32 sum beside it; at each mark it prints the relative error of both means against the
exact (float64) mean of the same float32 targets.

Run:  .venv/bin/python benchmarks/running_mean_drift.py [--n 30000000]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = ROOT / "firmware" / "link"

DRIVER = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "mt_link.h"

int main(int argc, char **argv)
{
    const long n = atol(argv[1]);
    static float mean[1], out[1];
    static uint32_t count[1];
    const mt_blend_t b = {mean, count, out, 1.0f, NULL};
    uint32_t x = 12345u;
    float sum = 0.0f;
    double exact = 0.0;
    long mark = 1000;
    printf("| targets | running mean (mt_blend_observe) | float32 sum / count |\n|---|---|---|\n");
    for (long i = 1; i <= n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        const float t = 0.3f + 0.1f * ((float)(x & 0xFFFFu) / 65536.0f - 0.5f);
        mt_blend_observe(&b, &t, NULL, 1u);
        sum += t;
        exact += t;
        if (i == mark || i == n) {
            const double m = exact / (double)i;
            printf("| %ld | %.1e | %.1e |\n", i, fabs(mean[0] - m) / m, fabs(sum / (float)i - m) / m);
            mark *= 10;
        }
    }
    return 0;
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000_000, help="targets fed to the zone")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "drift.c", Path(tmp) / "drift"
        src.write_text(DRIVER)
        cmd = [
            "cc",
            "-std=gnu11",
            "-O2",
            "-ffp-contract=off",
            f"-I{LINK}",
            str(src),
            str(LINK / "mt_link_blend.c"),
        ]
        subprocess.run([*cmd, "-lm", "-o", str(exe)], check=True)
        print(
            subprocess.run([str(exe), str(args.n)], check=True, capture_output=True, text=True).stdout, end=""
        )


if __name__ == "__main__":
    main()
