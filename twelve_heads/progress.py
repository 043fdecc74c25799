"""A progress bar for the long commands (`twelve-heads atlas`, the atlas step of `twelve-heads export`).

On a terminal it redraws one line; elsewhere (a log, a pipe, CI) it writes a line at every tenth of the way.
"""

import sys
import time

WIDTH = 30  # characters of bar
STEPS_WHEN_LOGGED = 10  # lines written when the stream is not a terminal


class ProgressBar:
    def __init__(self, label: str, unit: str, stream=None):
        self.label, self.unit = label, unit
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.started = time.perf_counter()
        self.logged = 0  # tenths written so far, when not a terminal

    def __call__(self, done: int, total: int) -> None:
        seconds = time.perf_counter() - self.started
        if self.terminal:
            filled = WIDTH * done // max(total, 1)
            line = f"\r{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} {self.unit}, {seconds:.0f} s"
            self.stream.write(line + ("\n" if done >= total else ""))
        else:
            step = STEPS_WHEN_LOGGED * done // max(total, 1)
            if step <= self.logged:
                return
            self.logged = step
            self.stream.write(f"{self.label}: {done}/{total} {self.unit} ({100 * done // max(total, 1)}%), "
                              f"{seconds:.0f} s\n")
        self.stream.flush()
