"""Run Whistle's benchmarks (``make bench``) and record them in bench/RESULTS.md.

    python bench/run.py                      # every benchmark, full sizes
    python bench/run.py attachments load     # some of them
    python bench/run.py --quick              # tiny sizes, a smoke test (well under a minute)

Each benchmark prints its figures and rewrites its own section of RESULTS.md
(``--results PATH`` writes elsewhere), with the machine's core count and the
date. Ratios are measured within one run, since the machines are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import OUT, log

#: Benchmark names and their modules, in the order they run.
BENCHMARKS = {
    "attachments": "bench.attachments",
    "cleaning": "bench.cleaning",
    "flood": "bench.flood",
    "list": "bench.case_list",
    "load": "bench.load",
    "submissions": "bench.submissions",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmarks", nargs="*", help=f"which to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the benchmarks run")
    parser.add_argument("--results", type=Path, default=None, help="the Markdown file to write (RESULTS.md)")
    args = parser.parse_args(argv)
    unknown = set(args.benchmarks) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for name in args.benchmarks or list(BENCHMARKS):
        began = time.monotonic()
        # Each benchmark removes what it put under bench/out/, whatever happens.
        importlib.import_module(BENCHMARKS[name]).run(quick=args.quick, results=args.results)
        log(f"   ({name}: {time.monotonic() - began:.0f} s)\n")
    log(f"Done in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
