"""Progress of the long steps: a tqdm bar on a terminal, plain log lines elsewhere.

Every long loop (decode cache, FineGAN and encoder training, encoding, k-means, UMAP,
galleries) goes through :func:`progress_bar`, so that ``--quiet`` silences all of them and
output piped into a file or a CI log reads as whole lines instead of carriage-return
redraws::

    train FineGAN: 300/3000 it [00:24<03:40, 12.30 it/s, loss_d=1.20]
"""

from __future__ import annotations

import sys
import threading
import time
import weakref

from tqdm.auto import tqdm

#: Seconds between two log lines when the output is not a terminal.
LOG_INTERVAL = 30.0
_LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(iterable=None, *, desc: str, total=None, initial: int = 0, unit: str = "it",
                 enabled: bool = True, file=None, interval: float = LOG_INTERVAL,
                 **tqdm_kwargs):
    """A progress bar with tqdm's interface (iterate, ``update``, ``set_postfix``, ``close``,
    ``with``), shown on ``file`` (default stderr).

    Parameters
    ----------
    iterable : iterable, optional
        Wrapped and iterated, as with tqdm.
    desc, total, initial, unit
        As in tqdm.
    enabled : bool, default True
        False shows nothing (``--quiet``).
    file : text stream, optional
        Where to write; default ``sys.stderr``.
    interval : float, default LOG_INTERVAL
        When ``file`` is not a terminal: seconds between two log lines (one is also written
        at the start and one at the end).
    **tqdm_kwargs
        Further tqdm options, used only on a terminal.
    """
    file = sys.stderr if file is None else file
    if enabled and not is_terminal(file):
        return LineProgress(iterable, desc=desc, total=total, initial=initial, unit=unit,
                            file=file, interval=interval)
    return tqdm(iterable, desc=desc, total=total, initial=initial, unit=unit,
                disable=not enabled, file=file, **tqdm_kwargs)


class LineProgress:
    """The subset of tqdm's interface the package uses, writing one line per report.

    A line is written when the loop starts, every ``interval`` seconds while it runs (also
    when the counter has not moved: a step such as k-means or UMAP can take minutes), and
    when it ends (``close``, the end of the iteration or of a ``with`` block).
    """

    def __init__(self, iterable=None, *, desc: str, total=None, initial: int = 0,
                 unit: str = "it", file=None, interval: float = LOG_INTERVAL):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.desc, self.total, self.n, self.unit = desc, total, initial, unit
        self.file = sys.stderr if file is None else file
        self.interval = interval
        self.postfix = ""
        self._initial = initial
        self._start = time.perf_counter()
        self._last = self._start
        self._closed = False
        self._written = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._write()
        if interval > 0:
            threading.Thread(target=_heartbeat, args=(weakref.ref(self), self._stop, interval),
                             name=f"progress: {desc}", daemon=True).start()

    def _write(self) -> None:
        elapsed = time.perf_counter() - self._start
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else None
        line = tqdm.format_meter(self.n, self.total, elapsed, prefix=self.desc, unit=self.unit,
                                 rate=rate, postfix=self.postfix or None,
                                 bar_format=_LINE_FORMAT)
        print(line, file=self.file, flush=True)
        self._last, self._written = time.perf_counter(), self.n

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.perf_counter() - self._last >= self.interval:
            with self._lock:
                self._write()

    def _beat(self) -> None:
        with self._lock:
            if not self._closed and time.perf_counter() - self._last >= self.interval * 0.99:
                self._write()

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str, refresh=True) -> None:
        self.desc = desc

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if not self._closed:
                self._closed = True
                if self._written != self.n:  # else the last line already says it
                    self._write()

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _heartbeat(ref, stop: threading.Event, interval: float) -> None:
    """Write a line for the progress ``ref()`` every ``interval`` s until it is closed or
    gone (a weak reference, so that a bar never closed, after an error, stops too)."""
    while not stop.wait(interval):
        bar = ref()
        if bar is None:
            return
        bar._beat()
        del bar


def messages(enabled: bool = True, file=None):
    """A ``log(msg)`` function: one line on ``file`` (default stderr), or nothing."""
    if not enabled:
        return lambda msg: None
    return lambda msg: print(msg, file=sys.stderr if file is None else file, flush=True)
