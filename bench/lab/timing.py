"""Timing on a shared machine: interleaved rounds, paired ratios, machine facts, the load from
other processes and FLOPs per network (``bench/speed.py``, ``bench/reference_speed.py``,
``bench/norm_kernel.py``).

Statistics: wall-clock median (p25-p75) of the timed repetitions after warm-up; the first warm-up
call runs under the FLOP counter. Implementations compared with each other are timed *interleaved*,
one call of each per round, and a speed-up is the median over rounds of the per-round ratio: times
drift by up to 3x between runs on this kind of machine, and a ratio of two medians measured minutes
apart inherits that drift. Load from other processes comes from the kernel's counters
(``/proc/stat`` before and after, minus this process tree's own CPU time).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

FOREIGN_WARN = 0.1  # cores used by other processes above which a measurement is flagged


def say(*args) -> None:
    print(*args, flush=True)


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded to 0.01 (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(threads: int) -> dict:
    par = torch.__config__.parallel_info()
    backend = next((ln.split(":", 1)[1].strip() for ln in par.splitlines() if "parallel backend" in ln), "?")
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": affinity,
        "torch": torch.__version__, "python": platform.python_version(), "threads": threads,
        "parallel_backend": backend, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset: default)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "mem_total_gb": _meminfo_gb(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _meminfo_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _proc_stat_busy() -> float | None:
    """CPU-seconds all CPUs have spent busy since boot (first line of /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds of this process and its waited-for children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class LoadMonitor:
    """Cores used by processes outside this process tree between ``start()`` and ``stop()``."""

    def start(self) -> "LoadMonitor":
        self.busy0, self.own0, self.t0 = _proc_stat_busy(), _own_cpu(), time.perf_counter()
        return self

    def stop(self) -> float | None:
        busy1, own1, wall = _proc_stat_busy(), _own_cpu(), time.perf_counter() - self.t0
        if self.busy0 is None or busy1 is None or wall <= 0:
            return None
        # /proc/stat ticks at 100 Hz: allow for one tick of rounding per CPU
        return max(0.0, (busy1 - self.busy0) - (own1 - self.own0)) / wall


def foreign_load(seconds: float) -> float | None:
    """Cores used by other processes over the next ``seconds`` (this process waits meanwhile)."""
    monitor = LoadMonitor().start()
    time.sleep(seconds)
    return monitor.stop()


def read_status(key: str) -> int | None:
    """A ``/proc/self/status`` field in bytes (VmHWM: peak resident size; VmRSS: current)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], statistics.median(xs), q[2]


def measure(fn: Callable[[], object], warmup: int, repeats: int, *, count_flops: bool = True,
            min_time: float = 0.0) -> dict:
    """Time ``fn``: ``warmup`` untimed calls (the first under the FLOP counter), then ``repeats`` timed
    calls, continued (up to ``10 * repeats``) until the timed calls add up to ``min_time`` seconds."""
    return measure_interleaved({"fn": fn}, warmup, repeats, count_flops=count_flops, min_time=min_time)["fn"]


def measure_interleaved(fns: dict[str, Callable[[], object]], warmup: int, repeats: int, *,
                        count_flops: bool = True, min_time: float = 0.0) -> dict[str, dict]:
    """Time several implementations of one computation in alternation, so that they share whatever
    the machine does meanwhile (frequency, cache, allocator state). Each timed round calls every
    function once (the order rotates between rounds); rounds continue past ``repeats`` (up to
    ``10 * repeats``) until all timed calls add up to ``min_time`` seconds.

    Returns one dict per name: wall-clock median and quartiles, median CPU seconds, the raw timings,
    FLOPs counted on its first warm-up call (None without ``count_flops``) and the load from other
    processes; plus, for every name but the first, ``paired_ratio``: the median over rounds of its
    time divided by the first function's time in the same round -- the speed-up statistic the
    targets use, robust to the drifts that make a ratio of two separately measured medians swing.
    """
    names = list(fns)
    flops: dict[str, int | None] = dict.fromkeys(names)
    for name, fn in fns.items():
        for i in range(max(warmup, 1 if count_flops else 0)):
            if i == 0 and count_flops:
                with FlopCounterMode(display=False) as counter:
                    fn()
                flops[name] = int(counter.get_total_flops())
            else:
                fn()
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    monitor = LoadMonitor().start()
    rounds = 0
    while rounds < repeats or (sum(map(sum, walls.values())) < min_time and rounds < 10 * repeats):
        for k in range(len(names)):
            name = names[(rounds + k) % len(names)]
            c0, t0 = time.process_time(), time.perf_counter()
            fns[name]()
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
        rounds += 1
    foreign = monitor.stop()
    out = {}
    for name in names:
        p25, med, p75 = quartiles(walls[name])
        out[name] = {"wall_s": med, "p25": p25, "p75": p75, "cpu_s": statistics.median(cpus[name]),
                     "walls": walls[name], "cpus": cpus[name], "flops": flops[name], "foreign_cores": foreign,
                     "warmup": warmup, "repeats": rounds}
        if name != names[0]:
            out[name]["paired_ratio"] = statistics.median(a / b for a, b in zip(walls[name], walls[names[0]]))
    return out


def matmul_peak(n: int, warmup: int, repeats: int) -> dict:
    """The float32 matmul speed of this machine: :func:`measure` of an ``n`` x ``n`` ``torch.mm``,
    plus ``n``, ``flops`` and GFLOP/s (``gflops_median``, ``gflops_best``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    m = measure(lambda: torch.mm(a, b, out=out), warmup, repeats, count_flops=False)
    m.update(n=n, flops=2 * n**3, gflops_median=2 * n**3 / m["wall_s"] / 1e9,
             gflops_best=2 * n**3 / min(m["walls"]) / 1e9)
    return m


# one measurement (a :func:`measure` result) in words and as table cells
def summary(m: dict) -> str:
    return f"{m['wall_s']:.3f} s ({m['p25']:.3f}-{m['p75']:.3f}), CPU {m['cpu_s']:.2f} s"


def load_note(m: dict) -> str:
    f = m.get("foreign_cores")
    return f"  [other processes: {f:.2f} cores]" if f is not None and f > FOREIGN_WARN else ""


def spread_cell(m: dict) -> str:
    return f"{m['wall_s']:.3f} ({m['p25']:.3f}–{m['p75']:.3f})"


def load_cell(m: dict) -> str:
    f = m.get("foreign_cores")
    return "?" if f is None else (f"**{f:.2f}**" if f > FOREIGN_WARN else f"{f:.2f}")


def gflop_cell(m: dict) -> str:
    return "–" if not m.get("flops") else f"{m['flops'] / 1e9:.2f}"


def rate_cells(m: dict, peak: float) -> tuple[str, str]:
    """Achieved GFLOP/s and its share of ``peak`` GFLOP/s."""
    if not m.get("flops"):
        return "–", "–"
    g = m["flops"] / m["wall_s"] / 1e9
    return f"{g:.1f}", f"{100 * g / peak:.0f} %"


class AttributedFlops(TorchDispatchMode):
    """Count matmul and convolution FLOPs (forward and backward; ``torch.utils.flop_counter``'s
    formulas) by the network whose parameter or buffer storage an operation reads; operations that
    read none (in sesim's losses: self-similarity products, InfoNCE) count as ``rest``."""

    def __init__(self, groups: dict[str, nn.Module | list[nn.Module]], rest: str) -> None:
        super().__init__()
        self.owner: dict[int, str] = {}
        for name, modules in groups.items():
            for module in modules if isinstance(modules, list) else [modules]:
                for t in [*module.parameters(), *module.buffers()]:
                    self.owner.setdefault(t.untyped_storage().data_ptr(), name)
        self.rest = rest
        self.flops: dict[str, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            flops = flop_registry[packet](*args, **kwargs, out_val=out)
            owner = next((self.owner[p] for a in args if isinstance(a, torch.Tensor)
                          and (p := a.untyped_storage().data_ptr()) in self.owner), self.rest)
            self.flops[owner] += int(flops)
        return out


def attributed_flops(fn: Callable[[], object], groups: dict[str, nn.Module | list[nn.Module]],
                     rest: str = "maps & rest") -> dict[str, int]:
    """FLOPs of one call of ``fn`` per group of networks (:class:`AttributedFlops`), then ``rest``
    and ``total``, in that order."""
    with AttributedFlops(groups, rest) as counter:
        fn()
    out = {name: counter.flops.get(name, 0) for name in [*groups, rest]}
    out["total"] = sum(out.values())
    return out
