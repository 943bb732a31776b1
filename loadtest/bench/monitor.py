"""CPU and memory of each process of the stack, sampled in a thread while the benchmark runs.

A window (one scenario) reports, per process group, the CPU it used (seconds, and percent
of one core over the window's wall time) and its peak resident memory. A group is one
process, or one process and its children (Postgres forks a backend per connection)."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class Window:
    began: float
    cpu: dict[str, float]
    machine_busy: float
    stall: float | None
    peak_rss: dict[str, float] = field(default_factory=dict)


def cpu_stall_seconds() -> float | None:
    """Linux pressure stall information: seconds in which some task waited for a CPU."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    total = dict(field.split("=") for field in some.split()[1:]).get("total")
    return int(total) / 1e6 if total is not None else None


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot."""
    t = psutil.cpu_times()
    busy = t.user + t.system  # guest time is already in user
    return float(busy + sum(getattr(t, f, 0.0) for f in ("nice", "irq", "softirq", "steal")))


class ResourceMonitor:
    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._roots: dict[str, list[tuple[psutil.Process, bool]]] = {}
        self._cpu: dict[str, float] = {}  # CPU seconds used since watched, per group
        self._last: dict[int, float] = {}  # CPU seconds of each process at its last sample
        self._windows: list[Window] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="resource-monitor", daemon=True)

    def watch(self, name: str, pid: int, *, children: bool = False) -> None:
        """Count `pid` (and its children) from now on, in group `name` (a group can have
        several: all the worker processes)."""
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        with self._lock:
            self._roots.setdefault(name, []).append((root, children))
            self._cpu.setdefault(name, 0.0)
            for proc in self._members(root, children):
                self._last[proc.pid] = _cpu_seconds(proc) or 0.0

    def find(self, needle: str) -> int | None:
        """The oldest process whose command line contains `needle` (a data directory)."""
        matches = []
        for proc in psutil.process_iter(["cmdline", "create_time"]):
            if needle in " ".join(proc.info["cmdline"] or []):
                matches.append((proc.info["create_time"], proc.pid))
        return min(matches)[1] if matches else None

    @staticmethod
    def _members(root: psutil.Process, children: bool) -> list[psutil.Process]:
        if not children:
            return [root]
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return [root]

    def sample(self) -> None:
        with self._lock:
            rss: dict[str, float] = {}
            for name, roots in self._roots.items():
                total = 0.0
                members = [proc for root, kids in roots for proc in self._members(root, kids)]
                for proc in members:
                    cpu = _cpu_seconds(proc)
                    if cpu is None:
                        continue
                    # A process first seen now started after watch(): all its CPU counts.
                    self._cpu[name] += max(cpu - self._last.get(proc.pid, 0.0), 0.0)
                    self._last[proc.pid] = cpu
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                rss[name] = total / 2**20
            for window in self._windows:
                for name, mb in rss.items():
                    window.peak_rss[name] = max(window.peak_rss.get(name, 0.0), mb)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def begin(self) -> Window:
        self.sample()
        with self._lock:
            window = Window(
                time.perf_counter(), dict(self._cpu), machine_busy_seconds(), cpu_stall_seconds()
            )
            self._windows.append(window)
        return window

    def end(self, window: Window, extra_cpu: dict[str, float] | None = None) -> dict[str, Any]:
        """Usage per group since `begin`; `extra_cpu` adds groups measured elsewhere (CPU
        seconds of a child process that has already exited, from its rusage)."""
        self.sample()
        with self._lock:
            self._windows.remove(window)
            cpu = {name: used - window.cpu.get(name, 0.0) for name, used in self._cpu.items()}
        wall = time.perf_counter() - window.began
        cpu |= extra_cpu or {}
        # Whatever else ran on the machine meanwhile (other people's jobs skew the figures).
        busy = machine_busy_seconds() - window.machine_busy
        cpu["other"] = max(busy - sum(cpu.values()), 0.0)
        stall_now = cpu_stall_seconds()
        stalled = None
        if stall_now is not None and window.stall is not None and wall > 0:
            stalled = 100 * (stall_now - window.stall) / wall
        return {
            "wall_s": wall,
            "cores": psutil.cpu_count() or 1,
            # Share of the time some runnable task waited for a CPU: the machine was full.
            "cpu_pressure_percent": stalled,
            "processes": {
                name: {
                    "cpu_s": used,
                    "cpu_percent": 100 * used / wall if wall > 0 else 0.0,
                    "rss_peak_mb": window.peak_rss.get(name),
                }
                for name, used in cpu.items()
            },
        }


def _cpu_seconds(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)
