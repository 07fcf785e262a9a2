"""Feedback while the command line simulates: :class:`Progress` (a bar on a terminal, plain
lines otherwise, nothing with ``--quiet``), and the Ctrl-C flag its reports check
(:data:`INTERRUPTED`, set by the handler :func:`lagc_jax.cli.main` installs).

>>> raise_if_interrupted()              # no Ctrl-C: nothing happens
"""

from __future__ import annotations

import shutil
import sys
import threading
import time

# Set by Ctrl-C. The KeyboardInterrupt the handler raises can be lost: jax runs a Python
# hook inside the garbage collector, where Python reports an exception as "ignored" (with
# a traceback) and drops it. Progress reports and the end of a command check the flag,
# so the interrupt still stops the run, and such a report is not printed.
INTERRUPTED = threading.Event()


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed (:data:`INTERRUPTED` is set)."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _duration(seconds: float) -> str:
    """``M:SS`` or ``H:MM:SS``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Feedback while the command line simulates ``points`` runs of ``iterations`` each
    (an int, or a sequence of each point's iterations).

    On a terminal (``stream.isatty()``) one line redrawn in place: a bar over the
    iterations of all points, the point running, the rate and the time left. Otherwise
    plain lines: one when a point ends (:meth:`finish`) and, while one runs, at most one
    every ``every`` seconds; :meth:`note` prints any other line (above the bar). ``quiet``:
    nothing. :meth:`report` is the engine's progress hook (``simulate(progress=...)``); it
    also stops the run at Ctrl-C.

    >>> import io
    >>> out, ticks = io.StringIO(), iter(range(0, 1000, 20))   # the clock moves 20 s a reading
    >>> progress = Progress(2, 100, stream=out, clock=lambda: float(next(ticks)), every=30)
    >>> progress.start("gd")
    >>> progress.report(50, 100)            # 20 s after the start: no line yet
    >>> progress.report(100, 100)           # 40 s: the point ends, no line mid-run
    >>> progress.finish("wrote r_gd.npz")
    >>> progress.start("gc"); progress.report(25, 100); progress.report(50, 100)
    >>> print(out.getvalue(), end="")
      gd (1/2): 100 iterations in 60 s; wrote r_gd.npz
      gc (2/2): 50/100 iterations, 40 s; total 150/200, ETA 0:40
    """

    BAR_WIDTH = 20

    def __init__(
        self,
        points: int,
        iterations,
        *,
        stream=None,
        quiet: bool = False,
        every: float = 30.0,
        clock=time.perf_counter,
    ):
        self.points = points
        self.per_point = (
            [int(iterations)] * points if isinstance(iterations, int) else list(iterations)
        )
        if len(self.per_point) != points:
            raise ValueError(f"iterations: {len(self.per_point)} counts for {points} points")
        self.stream = sys.stderr if stream is None else stream
        self.quiet, self.every, self.clock = quiet, every, clock
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = not quiet and callable(isatty) and isatty()
        self.label, self.point, self.done = "", 0, 0  # done: iterations of the current point
        self.started = self.point_started = self.last_line = None
        self.bar_shown = False

    @property
    def total(self) -> int:
        return sum(self.per_point)

    def _overall(self) -> int:
        return sum(self.per_point[: max(self.point - 1, 0)]) + self.done

    def _eta(self, now: float) -> str:
        elapsed, done = now - self.started, self._overall()
        if done <= 0 or elapsed <= 0:
            return "?"
        return _duration((self.total - done) * elapsed / done)

    def _rate(self, now: float) -> str:
        elapsed = now - self.started
        return f"{self._overall() / elapsed:.3g} it/s" if elapsed > 0 else "? it/s"

    def start(self, label: str) -> None:
        """The next point, named ``label``, starts (unless Ctrl-C was pressed: then
        KeyboardInterrupt)."""
        raise_if_interrupted()
        now = self.clock()
        self.started = now if self.started is None else self.started
        self.label, self.point, self.done = label, self.point + 1, 0
        self.point_started = self.last_line = now
        if self.terminal:
            self._draw(now)

    def report(self, done: int, total: int) -> None:
        """The engine's hook: ``done`` of the point's ``total`` iterations are done."""
        raise_if_interrupted()
        self.done = done
        if self.quiet:
            return
        now = self.clock()
        if self.terminal:
            self._draw(now)
        elif done < total and now - self.last_line >= self.every:
            self._line(
                f"  {self.label} ({self.point}/{self.points}): {done}/{total} "
                f"iterations, {now - self.point_started:.0f} s; total "
                f"{self._overall()}/{self.total}, ETA {self._eta(now)}",
                now,
            )

    def finish(self, message: str) -> None:
        """The point ended: one line with its duration and ``message`` (on a terminal, above
        the bar)."""
        now = self.clock()
        self.done = self.per_point[self.point - 1]
        if not self.quiet:
            self._line(
                f"  {self.label} ({self.point}/{self.points}): {self.done} "
                f"iterations in {now - self.point_started:.3g} s; {message}",
                now,
            )

    def note(self, text: str) -> None:
        """One line of other news (on a terminal, above the bar); nothing when quiet."""
        if not self.quiet:
            self._line(text, self.clock())

    def clear(self) -> None:
        """Erase the bar, so that what is printed next starts a clean line (the bar comes
        back at the next report)."""
        if self.bar_shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.bar_shown = False

    def _line(self, text: str, now: float) -> None:
        self.clear()
        print(text, file=self.stream, flush=True)
        self.last_line = now
        if self.terminal and self.started is not None and self._overall() < self.total:
            self._draw(now)

    def _draw(self, now: float) -> None:
        overall = self._overall()
        filled = self.BAR_WIDTH * overall // max(self.total, 1)
        bar = "█" * filled + "·" * (self.BAR_WIDTH - filled)
        text = (
            f"{self.label} ({self.point}/{self.points}) {bar} {overall}/{self.total} "
            f"iterations, {self._rate(now)}, ETA {self._eta(now)}"
        )
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + text[: max(width - 1, 10)] + "\x1b[K")
        self.stream.flush()
        self.bar_shown = True
