"""Opt-in pytest plugin: per-test wall and CPU time (this process + its waited-for subprocesses).

Enable with `-p tests.cpuprof` or FLAN_TEST_CPUPROF=1 (tests/conftest.py loads it then); off by
default. CPU is the RUSAGE_SELF + RUSAGE_CHILDREN user+sys delta over setup, call and teardown, so
a test that runs the trainer in a subprocess is charged for it. At the end of the session it prints
the tests and files sorted by CPU; with FLAN_TEST_CPUPROF_OUT=DIR each test's row is also
appended to DIR/cpuprof-<worker>.tsv (one file per xdist worker: nodeid, wall_s, cpu_s).
"""

from __future__ import annotations

import os
import pathlib
import resource
import time
from collections import defaultdict

import pytest

_ROWS: list[tuple[str, float, float]] = []  # (nodeid, wall_s, cpu_s)


def _cpu_s() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    del nextitem
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    yield
    row = (item.nodeid, time.perf_counter() - wall0, _cpu_s() - cpu0)
    _ROWS.append(row)
    out = os.environ.get("FLAN_TEST_CPUPROF_OUT")
    if out:  # appended test by test, so a run stopped early still leaves its rows
        worker = getattr(item.config, "workerinput", {}).get("workerid", "main")
        path = pathlib.Path(out) / f"cpuprof-{worker}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{row[0]}\t{row[1]:.2f}\t{row[2]:.2f}\n")


def _by_file(rows: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    files: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for nodeid, wall, cpu in rows:
        acc = files[nodeid.split("::")[0]]
        acc[0] += wall
        acc[1] += cpu
    return sorted(((f, w, c) for f, (w, c) in files.items()), key=lambda r: -r[2])


def pytest_terminal_summary(terminalreporter) -> None:
    if not _ROWS:  # under xdist the rows live in the workers: read FLAN_TEST_CPUPROF_OUT instead
        return
    write = terminalreporter.write_line
    write("")
    write(f"{'cpu_s':>8} {'wall_s':>8}  test (cpuprof, sorted by CPU)")
    for nodeid, wall, cpu in sorted(_ROWS, key=lambda r: -r[2])[:40]:
        write(f"{cpu:8.1f} {wall:8.1f}  {nodeid}")
    write(f"{'cpu_s':>8} {'wall_s':>8}  file")
    for name, wall, cpu in _by_file(_ROWS):
        write(f"{cpu:8.1f} {wall:8.1f}  {name}")
