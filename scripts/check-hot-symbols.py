#!/usr/bin/env python3
"""Checks that a hot-function list still names the built binary's code.

The release build links the functions of scripts/hot-symbols.TARGET.txt
first (see the Makefile); the names are mangled, so a changed toolchain or
a refactor can leave the list naming functions that no longer exist, and
the ordering then silently does nothing. This fails when fewer than
MIN_SHARE of the listed symbols are in the binary (regenerate the list
with `make hot-symbols`).

usage: check-hot-symbols.py BINARY LIST
"""
import subprocess
import sys

MIN_SHARE = 0.95


def main():
    binary, listing = sys.argv[1], sys.argv[2]
    try:
        with open(listing) as f:
            wanted = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    except FileNotFoundError:
        print(f"check-hot-symbols: no list {listing}: nothing to check")
        return 0
    nm = subprocess.run(["nm", binary], capture_output=True, text=True, check=True)
    present = {l.split()[-1] for l in nm.stdout.splitlines() if l.strip()}
    found = sum(1 for s in wanted if s in present)
    share = found / len(wanted) if wanted else 1.0
    print(f"check-hot-symbols: {found} of {len(wanted)} symbols of {listing} are in {binary} ({share:.1%})")
    if share < MIN_SHARE:
        print(f"check-hot-symbols: below {MIN_SHARE:.0%}: regenerate it with `make hot-symbols` (as root) and commit it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
