"""Controls typed while a live session runs: `NAME=VALUE` lines and `q`, read from a terminal, file or fd."""

from __future__ import annotations

import os
import select
import sys
import threading
from typing import Any, Callable

from neuralcomp.errors import NeuralcompError

QUIT_WORDS = ("q", "quit", "exit")


def terminal_source(control_input: Any, terminal_controls: bool | None) -> Any:
    """What to read controls from: `control_input` if given, stdin when asked to or when it is a TTY, else None."""
    if control_input is not None:
        return control_input
    if terminal_controls is False or sys.stdin is None:
        return None
    if terminal_controls:
        return sys.stdin
    try:
        return sys.stdin if sys.stdin.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None


class TerminalControls:
    """A daemon thread reading lines from `source`: `NAME=VALUE` calls `set_control`, `q` calls `quit`.

    Errors (unknown control, value out of range, not a number) are printed and the reader goes on.
    """

    def __init__(self, source: Any, control_names: list[str], set_control: Callable[[str, str], None],
                 quit: Callable[[], None], print_line: Callable[[str], None]) -> None:
        self._source = source
        self._control_names = control_names
        self._set_control = set_control
        self._quit = quit
        self._print = print_line
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="neuralcomp-live-controls")

    @property
    def usage(self) -> str:
        return f"type NAME=VALUE to set a control ({', '.join(self._control_names) or 'none'}), q to quit"

    def start(self) -> None:
        self._print(self.usage)
        self._thread.start()

    def stop(self, timeout: float = 0.5) -> None:
        self._stopped.set()
        self._thread.join(timeout=timeout)

    def handle_line(self, line: str) -> None:
        """Apply one typed line (public so that a session can be driven without a terminal)."""
        line = line.strip()
        if not line:
            return
        if line.lower() in QUIT_WORDS:
            self._quit()
            return
        name, separator, value = line.partition("=")
        if not separator:
            self._print(self.usage)
            return
        try:
            self._set_control(name.strip(), value.strip())
        except (NeuralcompError, ValueError) as exc:
            self._print(f"error: {exc}")
        else:
            self._print(f"{name.strip()} = {float(value)} (from the next callback)")

    def _read(self) -> None:
        try:
            fd = self._source if isinstance(self._source, int) else self._source.fileno()
        except (AttributeError, OSError, ValueError):
            return
        pending = b""
        while not self._stopped.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return  # end of file
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                self.handle_line(line.decode(errors="replace"))
