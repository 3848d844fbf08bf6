"""What every benchmark shares: a peak-memory sampler, timing and the results table."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.md"


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measure:
    seconds: float = 0.0
    peak_rss: int = 0


@contextmanager
def measured(interval: float = 0.01) -> Iterator[Measure]:
    """Wall time and the peak RSS of the process while the block runs (sampled)."""
    result = Measure()
    stop = threading.Event()
    peak = [rss_bytes()]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        result.peak_rss = max(peak[0], rss_bytes())


@dataclass
class Row:
    figure: str
    measured: str
    target: str
    baseline: str = ""
    verdict: str = ""


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: str) -> None:
        self.rows.append(Row(*args))

    def markdown(self) -> str:
        lines = [
            f"## {self.title}",
            "",
            f"_Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC._",
            "",
            "| figure | measured | target | baseline (same run) | verdict |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.figure} | {r.measured} | {r.target} | {r.baseline} | {r.verdict} |"
            for r in self.rows
        ]
        lines += ["", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(lines)

    def print(self) -> None:
        width = max(len(r.figure) for r in self.rows) if self.rows else 10
        print(f"\n{self.title}")
        for r in self.rows:
            extra = f"  [baseline {r.baseline}]" if r.baseline else ""
            print(f"  {r.figure:<{width}}  {r.measured:>14}  target {r.target}{extra}  {r.verdict}")
        for n in self.notes:
            print(f"  - {n}")

    def save(self, section: str) -> None:
        """Replace this benchmark's section of ``bench/results.md``, keeping the others."""
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
        start, end = f"<!-- {section} -->", f"<!-- /{section} -->"
        block = f"{start}\n{self.markdown()}{end}"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        RESULTS.write_text(text, encoding="utf-8")


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def start_sandbox_process(
    target: Callable[..., None], *args: Any
) -> tuple[BaseProcess, Connection, Any]:
    """Start ``target(conn, *args)`` in a spawned child that serves sandbox CRMs; wait for its
    first message (the handshake) and return the process, our end of the pipe and that message.
    Fails instead of waiting forever when the child dies before serving."""
    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    while not conn.poll(1.0):
        if not proc.is_alive():
            raise RuntimeError(f"the sandbox process exited ({proc.exitcode})")
    return proc, conn, conn.recv()
