"""Progress of a long command on stderr, and the command line's logging: what ``matcher`` subcommands share.

The library never prints: :func:`matcher.scan.run_scan`, :func:`matcher.cluster.run_cluster` and
:func:`matcher.hashing.hash_paths` take a ``progress`` callback. The commands hand them one that feeds
a :class:`ProgressReporter`, which draws

* on a terminal (stderr is a TTY and ``TERM`` is not ``dumb``): a live bar drawn by ``rich``, with
  the files, bytes, rate, matches, errors and ETA beside it;
* otherwise (``nohup``, cron, a case-management tool reading stderr): one plain line every
  ``interval`` seconds (default :data:`DEFAULT_INTERVAL`; the environment variable
  :data:`INTERVAL_VARIABLE` changes it), and a last one when the run ends if any was printed, e.g.
  ``matcher scan: 1200/5000 files, 1.2 GB/4.8 GB (25%), 40.1 MB/s, 3 matched, 0 errors, 0:00:30 elapsed, ETA 0:01:30``.

The ETA (:class:`EtaEstimator`) comes from bytes, not files (one video weighs as much as a thousand
thumbnails), measured over the last minute, and only after a warm-up (5 % of the bytes or 10 s),
never from the first few files. Nothing here starts before a command asks for it, and ``rich`` is
imported only to draw a bar.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any, TextIO

from .errors import UsageError

__all__ = [
    "DEFAULT_INTERVAL",
    "INTERVAL_VARIABLE",
    "WARMUP_FRACTION",
    "WARMUP_SECONDS",
    "RATE_WINDOW",
    "EtaEstimator",
    "ProgressState",
    "ProgressReporter",
    "configure_logging",
    "format_bytes",
    "format_duration",
    "interval_from_environment",
    "progress_line",
    "reporting",
]

#: Seconds between two plain progress lines when stderr is not a terminal.
DEFAULT_INTERVAL = 30.0
#: The environment variable that sets that interval (seconds, e.g. ``MATCHER_PROGRESS_INTERVAL=300``).
INTERVAL_VARIABLE = "MATCHER_PROGRESS_INTERVAL"
#: No ETA before this share of the bytes is read ...
WARMUP_FRACTION = 0.05
#: ... or before this many seconds have passed, whichever comes first.
WARMUP_SECONDS = 10.0
#: The rate (and so the ETA) is measured over this many recent seconds.
RATE_WINDOW = 60.0
# Seconds between the samples the rate is measured on.
_SAMPLE_SPACING = 0.5

#: The logger whose info and debug lines ``-v`` shows; other libraries' stay at WARNING until ``-vv``.
_MATCHER_LOGGER = "matcher"


def configure_logging(verbosity: int) -> None:
    """The command line's logging: ``0`` warnings only; ``1`` (``-v``) matcher's own info and debug
    lines too, other libraries' (Pillow, numba, distributed, asyncio, ...) still at WARNING; ``2`` or
    more (``-vv``) everything, each line naming its logger."""
    verbosity = int(verbosity or 0)
    everything = verbosity >= 2
    logging.basicConfig(
        level=logging.DEBUG if everything else logging.WARNING,
        format="%(name)s: %(message)s" if everything else "matcher: %(message)s",
    )
    logging.getLogger(_MATCHER_LOGGER).setLevel(logging.DEBUG if verbosity >= 1 else logging.NOTSET)


def interval_from_environment(default: float = DEFAULT_INTERVAL) -> float:
    """Seconds between plain progress lines: :data:`INTERVAL_VARIABLE` when set, else ``default``.
    :class:`~matcher.errors.UsageError` for a value that is not a positive number of seconds."""
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise UsageError(f"{INTERVAL_VARIABLE} must be a positive number of seconds, not {text!r}")
    return value


def format_bytes(count: float) -> str:
    """``1.2 GB``: a byte count in decimal units (as disks are sold)."""
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"  # pragma: no cover - the loop returns


def format_duration(seconds: float) -> str:
    """``1:02:03``: hours, minutes and seconds (hours grow past 24)."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class EtaEstimator:
    """Time left from bytes read: the rate over the last ``window`` seconds, after a warm-up.

    Feed it :meth:`observe` ``(elapsed seconds, bytes done)``; the first observation is the baseline
    (a resumed scan's bytes already done). No estimate while the warm-up lasts: until
    ``warmup_fraction`` of the bytes still to read at the baseline have been read, or
    ``warmup_seconds`` have passed, whichever comes first, nor without any bytes read since the
    baseline (workers still starting) or without a total.
    """

    def __init__(
        self,
        total_bytes: int | None,
        *,
        warmup_fraction: float = WARMUP_FRACTION,
        warmup_seconds: float = WARMUP_SECONDS,
        window: float = RATE_WINDOW,
    ) -> None:
        self.total_bytes = total_bytes
        self.warmup_fraction = warmup_fraction
        self.warmup_seconds = warmup_seconds
        self.window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._baseline: tuple[float, int] | None = None

    def observe(self, elapsed: float, done_bytes: int) -> None:
        """Record that ``done_bytes`` were done after ``elapsed`` seconds."""
        if self._baseline is None:
            self._baseline = (elapsed, done_bytes)
        samples = self._samples
        if len(samples) >= 2 and samples[-1][0] - samples[-2][0] < _SAMPLE_SPACING:
            samples[-1] = (elapsed, done_bytes)  # a fast run: keep a sample every half second, not per file
        else:
            samples.append((elapsed, done_bytes))
        while len(samples) > 2 and samples[1][0] <= elapsed - self.window:
            samples.popleft()

    def warmed_up(self) -> bool:
        """Whether the warm-up is over (see the class documentation)."""
        if self._baseline is None or not self._samples or not self.total_bytes:
            return False
        start, base = self._baseline
        now, done = self._samples[-1]
        left_at_start = max(0, self.total_bytes - base)
        return now - start >= self.warmup_seconds or done - base >= self.warmup_fraction * left_at_start

    def rate(self) -> float | None:
        """Bytes per second over the window (``None`` before two observations apart in time)."""
        if len(self._samples) < 2:
            return None
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def eta(self) -> float | None:
        """Seconds left, or ``None`` while there is no honest estimate."""
        if not self.warmed_up() or self.total_bytes is None:
            return None
        done = self._samples[-1][1]
        left = self.total_bytes - done
        if left <= 0:
            return 0.0
        rate = self.rate()
        return left / rate if rate else None


@dataclass(frozen=True, slots=True)
class ProgressState:
    """What a progress line shows. ``files`` walked entries done (``total_files`` of them, ``None``
    when not counted); ``bytes_done`` of ``total_bytes``; ``records`` (hash records, or records read
    from a hash list) and ``matches`` (files matched) where the command has them (``None``: not
    shown); ``errors`` files with an error; ``stage`` a word for what is happening beyond reading
    (``"grouping"``); ``elapsed`` seconds; ``rate`` bytes per second; ``eta`` seconds left."""

    files: int = 0
    total_files: int | None = None
    bytes_done: int = 0
    total_bytes: int | None = None
    records: int | None = None
    matches: int | None = None
    errors: int = 0
    stage: str | None = None
    elapsed: float = 0.0
    rate: float | None = None
    eta: float | None = None


def progress_line(state: ProgressState, warming_up: bool = False) -> str:
    """The progress of ``state`` in words (without the command's name)."""
    files = f"{state.files}/{state.total_files} files" if state.total_files is not None else f"{state.files} files"
    parts = [files]
    done = format_bytes(state.bytes_done)
    if state.total_bytes:
        share = min(100, int(100 * state.bytes_done / state.total_bytes))
        parts.append(f"{done}/{format_bytes(state.total_bytes)} ({share}%)")
    else:
        parts.append(done)
    if state.rate is not None:
        parts.append(f"{format_bytes(state.rate)}/s")
    if state.records is not None:
        parts.append(f"{state.records} records")
    if state.matches is not None:
        parts.append(f"{state.matches} matched")
    parts.append(f"{state.errors} errors")
    parts.append(f"{format_duration(state.elapsed)} elapsed")
    if state.stage is not None:
        parts.append(state.stage)
    elif state.eta is not None:
        parts.append(f"ETA {format_duration(state.eta)}")
    elif warming_up and state.total_bytes:
        parts.append("ETA after warm-up")
    return ", ".join(parts)


# What the line says until the run's first news (while the files are counted, say).
_STARTING = "starting"
_FIELDS = frozenset(f.name for f in fields(ProgressState)) - {"elapsed", "rate", "eta"}


class ProgressReporter:
    """One command's progress on ``stream`` (default stderr): a ``rich`` bar on a terminal, else a
    plain line every ``interval`` seconds (default: :func:`interval_from_environment`); nothing at
    all with ``quiet``.

    Use it as a context manager; feed it with :meth:`update` (any :class:`ProgressState` field but
    ``elapsed``, ``rate`` and ``eta``, which it computes itself); print problems with :meth:`note`
    (above the bar on a terminal) and the closing summary with :meth:`summary`. ``live`` forces the
    bar on (``True``) or off (``False``); ``None`` decides from the stream.
    """

    def __init__(
        self,
        command: str,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        interval: float | None = None,
        live: bool | None = None,
    ) -> None:
        self.command = command
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.interval = interval if interval is not None else interval_from_environment()
        self._live = False if quiet else (_is_terminal(self.stream) if live is None else live)
        self._state = ProgressState(stage=_STARTING)
        self._estimator: EtaEstimator | None = None
        self._lock = threading.RLock()
        self._clock = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._task: Any = None
        self._restore: list[tuple[Any, ...]] = []
        self.lines = 0  # plain lines printed so far

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> ProgressReporter:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.finish()

    def start(self) -> None:
        """Start the clock, and the bar or the thread that prints the plain lines."""
        self._clock = time.monotonic()
        if self.quiet:
            return
        if self._live:
            self._start_bar()
            return
        self._thread = threading.Thread(target=self._tick, name="matcher-progress", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """Stop: the bar stays drawn at its last state; a plain run that printed any line prints the last."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
            if self.lines:
                self._print_line()
        bar, self._bar = self._bar, None
        if bar is not None:
            self._refresh_bar(bar)
            bar.stop()
            for target, name, before in reversed(self._restore):
                if name == "stream":
                    target.setStream(before)
                else:
                    setattr(target, name, before)
            self._restore.clear()

    # -- feeding ----------------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Set what changed (``files=``, ``bytes_done=``, ``total_bytes=``, ``matches=``, ...)."""
        unknown = set(changes) - _FIELDS
        if unknown:
            raise UsageError(f"unknown progress field(s): {', '.join(sorted(unknown))}")
        with self._lock:
            if "stage" not in changes and self._state.stage == _STARTING:
                changes["stage"] = None  # the first news from the run: it has started
            state = replace(self._state, **changes)
            if self._estimator is None or self._estimator.total_bytes != state.total_bytes:
                self._estimator = EtaEstimator(state.total_bytes) if state.total_bytes else None
            if self._estimator is not None:
                self._estimator.observe(self.elapsed(), state.bytes_done)
            self._state = state
        bar = self._bar
        if bar is not None:
            self._refresh_bar(bar)

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.monotonic() - self._clock

    def state(self) -> ProgressState:
        """The state now, with the elapsed time, rate and ETA."""
        with self._lock:
            state, estimator = self._state, self._estimator
            elapsed = self.elapsed()
            rate = estimator.rate() if estimator is not None else None
            if rate is None and elapsed > 0 and state.bytes_done:
                rate = state.bytes_done / elapsed
            eta = estimator.eta() if estimator is not None else None
            return replace(state, elapsed=elapsed, rate=rate, eta=eta)

    def note(self, text: str) -> None:
        """A line for the user (a problem, a warning), printed above the bar on a terminal (the
        caller decides whether ``quiet`` silences it)."""
        bar = self._bar
        if bar is not None:
            bar.console.print(text, markup=False, highlight=False, soft_wrap=True, emoji=False)
            return
        with self._lock:
            print(text, file=self.stream, flush=True)

    def summary(self, text: str) -> None:
        """The closing summary line (after :meth:`finish`), unless ``quiet``."""
        if not self.quiet:
            with self._lock:
                print(text, file=self.stream, flush=True)

    # -- drawing ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._print_line()

    def _print_line(self) -> None:
        state = self.state()
        warming = self._estimator is not None and not self._estimator.warmed_up()
        with self._lock:
            print(f"matcher {self.command}: {progress_line(state, warming)}", file=self.stream, flush=True)
            self.lines += 1

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(file=self.stream, highlight=False, force_terminal=True)
        bar = Progress(
            TextColumn("matcher {task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
            refresh_per_second=4,
        )
        self._task = bar.add_task(self.command, total=None, info="")
        bar.start()
        self._bar = bar
        # While the bar is drawn, whatever else goes to the same stream (log lines, warnings) is
        # printed above it rather than through it.
        writer = _ConsoleWriter(console, self.stream)
        if sys.stderr is self.stream:
            self._restore.append((sys, "stderr", sys.stderr))
            sys.stderr = writer
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                self._restore.append((handler, "stream", handler.setStream(writer)))

    def _refresh_bar(self, bar: Any) -> None:
        state = self.state()
        warming = self._estimator is not None and not self._estimator.warmed_up()
        total = state.total_bytes if state.total_bytes else None
        bar.update(self._task, completed=state.bytes_done, total=total, info=progress_line(state, warming))


class _ConsoleWriter(io.TextIOBase):
    """A text stream whose complete lines a ``rich`` console prints above its live display."""

    def __init__(self, console: Any, stream: TextIO) -> None:
        super().__init__()
        self._console = console
        self._stream = stream
        self._pending = ""

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._console.print(line, markup=False, highlight=False, soft_wrap=True, emoji=False)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._console.print(pending, markup=False, highlight=False, soft_wrap=True, emoji=False)

    def isatty(self) -> bool:
        return True


def _is_terminal(stream: TextIO) -> bool:
    """Whether a live bar can be drawn on ``stream``: a terminal, and not a dumb one."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if stream.isatty():
            return os.environ.get("TERM", "").lower() not in ("dumb", "unknown")
    return False


@contextlib.contextmanager
def reporting(command: str, *, quiet: bool = False, stream: TextIO | None = None) -> Iterator[ProgressReporter]:
    """A started :class:`ProgressReporter` for the block, finished after it (even when it raises)."""
    reporter = ProgressReporter(command, quiet=quiet, stream=stream)
    with reporter:
        yield reporter
