"""`python -m sentinel.demo DIR`: write the demo's generated normal clips and test recording."""

from __future__ import annotations

import sys

from sentinel.synth import write_demo_set


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sentinel.demo OUT_DIR", file=sys.stderr)
        return 2
    paths = write_demo_set(argv[0])
    print(f"demo data: normal clips in {paths['normal']}, test recording {paths['recording']} "
          "(a rattle from 12.0 s to 13.0 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
