"""``python -m bench`` runs the targets suite (``bench.targets``); ``python -m bench <name>
[options]`` runs one benchmark by name; ``python -m bench --help`` lists them."""

from __future__ import annotations

import sys

BENCHMARKS = {
    "targets": "bench.targets",
    "engine": "bench.engine",
    "engine_choice": "bench.engine_choice",
    "sync": "bench.sync",
    "writeback": "bench.writeback",
}


def main() -> None:
    if len(sys.argv) < 2 or (sys.argv[1].startswith("--") and sys.argv[1] != "--help"):
        sys.argv.insert(1, "targets")  # no benchmark named: the targets suite
    if sys.argv[1] in {"-h", "--help"}:
        print("usage: python -m bench [<benchmark>] [--help]  (default: targets)\n\nbenchmarks:")
        for name, module in BENCHMARKS.items():
            print(f"  {name:<10} {module}")
        return
    name, rest = sys.argv[1], sys.argv[2:]
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    import importlib

    importlib.import_module(BENCHMARKS[name]).main(rest)


if __name__ == "__main__":
    main()
