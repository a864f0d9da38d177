"""How lowering cost grows with the number of metadata instructions (issue 18, point 4).

    .venv/bin/python benchmarks/bench_lowering.py [--counts 1000,2000,4000,8000,10000] [--repeat 3]

Each Dockerfile is `FROM scratch` and N instructions cycling through ENV (new keys), LABEL,
ARG, EXPOSE and an ENV that reads the previous variable, lowered with `dockerfile_to_llb`
and marshaled to a Definition. Prints a Markdown table: the median seconds, the
microseconds per instruction and the ratio to the previous row (2.0 for doubled N means
linear; 4.0 quadratic). Before the fix (a deep copy of the image config per instruction)
1,000 ENV lines took 3.5 s and 4,000 took 68 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver.frontend import dockerfile_to_llb  # noqa: E402


def dockerfile(count: int) -> str:
    lines = ["FROM scratch"]
    for i in range(count):
        lines.append((f"ENV V{i}=v{i}", f"LABEL l{i}=x", f"ARG A{i}=1", f"EXPOSE {i % 60000 + 1}",
                      f"ENV SAME=${{V{i - 1}:-none}}")[i % 5])
    return "\n".join(lines) + "\n"


def lower_seconds(text: str) -> float:
    start = time.perf_counter()
    dockerfile_to_llb(text).state.marshal("linux/amd64")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,2000,4000,8000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| instructions | median s | µs per instruction | ratio to previous |")
    print("|---:|---:|---:|---:|")
    previous = None
    for count in (int(c) for c in args.counts.split(",")):
        text = dockerfile(count)
        median = statistics.median(lower_seconds(text) for _ in range(args.repeat))
        ratio = f"{median / previous:.2f}" if previous else "-"
        print(f"| {count:,} | {median:.3f} | {median / count * 1e6:.0f} | {ratio} |")
        previous = median
    return 0


if __name__ == "__main__":
    sys.exit(main())
