"""Helpers shared by the benchmark scripts: where they run, what they record, how they print.

Every benchmark appends one JSON object per measured run to a ``.jsonl`` file (one line
each, never rewritten), in the manner of stylegan2-ada-pytorch's metric files, so that
results from different commits and machines accumulate and can be compared later. A
record carries the machine (:func:`machine_info`) and the commit (:func:`git_info`) it was
measured on, because a number without them cannot be reproduced.

The scripts run from a checkout without installing fgdiscover: :data:`REPO_ROOT` is put on
``sys.path`` (and on the ``PYTHONPATH`` of any subprocess, see :func:`subprocess_env`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

#: The checkout the benchmark scripts belong to (the folder above ``benchmarks/``).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where results go unless a script is told otherwise.
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

if str(REPO_ROOT) not in sys.path:  # fgdiscover is used from the checkout, not installed
    sys.path.insert(0, str(REPO_ROOT))

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class BenchmarkError(Exception):
    """A mistake in a benchmark's arguments or inputs; the script prints it on one line."""


# ------------------------------------------------------------------------ environment
def cpu_model() -> str:
    """The CPU's marketing name (``model name`` of /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers often narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_info() -> dict:
    """Everything about the machine and software that a timing or a score depends on.

    Returns
    -------
    dict
        ``hostname``, ``platform``, ``python``, ``cpu`` (model), ``cpu_count`` (logical
        cores), ``usable_cores`` (affinity), ``load_avg`` (1, 5, 15 minutes, at the time of
        the call: another busy process slows every timing), ``thread_env`` (the thread
        variables that are set), versions of ``numpy``, ``torch``, ``faiss``, ``torch_threads``,
        and ``gpus``: a list of ``{"name", "memory_gib"}``, empty without CUDA.
    """
    import numpy as np

    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "thread_env": {k: os.environ[k] for k in _THREAD_VARIABLES if k in os.environ},
        "numpy": np.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.version.cuda
        info["gpus"] = [
            {"name": torch.cuda.get_device_name(i),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())
        ] if torch.cuda.is_available() else []
    except ImportError:
        info["torch"], info["gpus"] = None, []
    try:
        import faiss

        info["faiss"] = faiss.__version__
    except ImportError:
        info["faiss"] = None
    return info


def git_info(repo: Path = REPO_ROOT) -> dict:
    """The commit a benchmark ran on, without changing anything in the repository.

    Returns
    -------
    dict
        ``commit`` (full hash, or None outside a git checkout) and ``dirty`` (True when
        tracked files differ from that commit, so the numbers belong to uncommitted code;
        None when unknown).
    """

    def git(*args):
        # --no-optional-locks: `git status` must not refresh (write) the index meanwhile
        return subprocess.run(["git", "--no-optional-locks", "-C", str(repo), *args],
                              capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return {"commit": head.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second (``2025-01-31T12:00:00+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def subprocess_env(extra: dict | None = None) -> dict:
    """This process's environment with :data:`REPO_ROOT` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.update(extra or {})
    return env


def run_measured(cmd: Sequence[str], log_path: Path, *, env: dict | None = None,
                 cwd: Path | None = None) -> dict:
    """Run ``cmd`` to completion, its output going to ``log_path``, and measure it.

    The peak memory is that of this one child: the high-water mark ``VmHWM`` of
    ``/proc/PID/status``, sampled every 0.2 s (it is reset by ``exec``, so it does not count
    the pages the child shared with this process between fork and exec, which ``wait4``'s
    ``ru_maxrss`` does); where /proc is missing, ``wait4``'s ``ru_maxrss``.

    Returns
    -------
    dict
        ``returncode``, ``wall_s`` (wall-clock seconds, ``time.perf_counter``), ``cpu_s``
        (user + system CPU seconds of the child) and ``peak_rss_gib`` (its maximum
        resident set size; Linux reports ``ru_maxrss`` in KiB).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=cwd)
        hwm_kib = 0
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                hwm_kib = max(hwm_kib, _vm_hwm_kib(proc.pid))
                time.sleep(0.2)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it, so Popen cannot
    scale = 1 if sys.platform == "darwin" else 1024  # macOS: bytes, Linux: KiB
    peak = hwm_kib * 1024 if hwm_kib else usage.ru_maxrss * scale
    return {"returncode": proc.returncode, "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_gib": peak / 2**30}


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident memory of a live process in KiB from /proc (0 if unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def self_peak_rss_gib() -> float:
    """Peak resident set size of this process so far, in GiB."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30


def tail(path: Path, n: int = 20) -> str:
    """The last ``n`` lines of a text file (progress bars' carriage returns become lines)."""
    try:
        text = Path(path).read_text(errors="replace").replace("\r", "\n")
    except OSError:
        return ""
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-n:])


# ------------------------------------------------------------------------- results
def append_jsonl(path: Path, record: dict) -> None:
    """Append ``record`` to ``path`` as one line of JSON (creating the folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, allow_nan=False)
    with open(path, "a") as fh:
        fh.write(line + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a results file, in the order they were appended.

    Raises
    ------
    BenchmarkError
        Missing file, or a line that is not a JSON object (the line number is given).
    """
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"no results file at {path}")
    records = []
    with open(path) as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise BenchmarkError(f"{path}:{i} is not valid JSON") from None
            if not isinstance(rec, dict):
                raise BenchmarkError(f"{path}:{i} is not a JSON object")
            records.append(rec)
    return records


# ------------------------------------------------------------------ summaries, tables
def summarize(values: Iterable[float | None]) -> dict | None:
    """Median, min, max and count of the known values (None and NaN are skipped).

    Returns
    -------
    dict with keys ``median``, ``min``, ``max``, ``n``; None when no value is known.
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def format_summary(s: dict | None, fmt: str = ".3f") -> str:
    """``0.512`` for one value, ``0.512 (0.498-0.530)`` (median, range) for several."""
    if s is None:
        return "-"
    lo, hi = format(s["min"], fmt), format(s["max"], fmt)
    if lo == hi:  # one value, or a range too narrow to show
        return format(s["median"], fmt)
    return f"{s['median']:{fmt}} ({lo}-{hi})"


# one copy, shared with `fgdiscover benchmark`'s report
from fgdiscover.markdown import markdown_table  # noqa: E402,F401


def dig(record: dict, dotted: str):
    """``record["a"]["b"]`` for ``"a.b"``; None where any part is missing."""
    cur = record
    for key in dotted.split("."):
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur
