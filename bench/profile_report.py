"""Sum up py-spy's collapsed stacks (bench/run.py --profile) by function: where the workers'
time went, inclusive and self, as a share of the samples that were not idle.

    .venv/bin/python bench/profile_report.py bench/profiles/sqlite-address_update-10-c16-*.txt [--top 40]
"""
from __future__ import annotations

import argparse
import collections
import re
import sys

IDLE = re.compile(r"\\b(wait|select|poll|epoll|accept|_recv_into|readinto)\\b|threading.py|selectors.py")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--all", action="store_true", help="count idle stacks too")
    args = parser.parse_args()
    inclusive, own = collections.Counter(), collections.Counter()
    total = 0
    for name in args.files:
        for line in open(name, encoding="utf-8", errors="replace"):
            stack, _, count = line.rstrip("\\n").rpartition(" ")
            frames = stack.split(";")
            if not args.all and ("worker" not in stack or frames[-1].startswith(("wait", "select"))):
                continue  # a thread parked in the pool or the main loop
            n = int(count)
            total += n
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples")
    print("inclusive:")
    for frame, n in inclusive.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("self:")
    for frame, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
