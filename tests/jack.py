"""A private JACK dummy server for tests that need a real audio device with a real clock.

`start_jack_server()` starts `jackd -n NAME --no-realtime -d dummy` (a unique NAME, so it does not
clash with a server already running), waits until it is ready, and points this process's libjack
at it (JACK_DEFAULT_SERVER, JACK_NO_START_SERVER). It must run before sounddevice is first
imported: PortAudio enumerates devices (and connects to JACK) at import.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

RATE = 44100  # the test server's rate and period
BLOCK = 256
_ENV_KEYS = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER", "JACK_NO_AUDIO_RESERVATION")


class JackUnavailable(RuntimeError):
    """jackd (or its tools) is not installed, or the server did not start."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def jack_installed() -> bool:
    return all(shutil.which(tool) for tool in ("jackd", "jack_wait", "jack_lsp", "jack_connect", "jack_disconnect"))


@dataclass
class JackServer:
    name: str
    rate: int
    period: int
    process: subprocess.Popen
    _saved_env: dict = field(default_factory=dict)
    used_here: bool = True  # this process's libjack points at it (else only child processes use it)

    def child_env(self) -> dict:
        """Environment for a child process that should use this server."""
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1",
                    JACK_NO_AUDIO_RESERVATION="1")

    def _tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([args[0], "-s", self.name, *args[1:]], capture_output=True, text=True, timeout=10)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def ports(self) -> list[str]:
        return [p.strip() for p in self._tool("jack_lsp").stdout.splitlines() if p.strip()]

    def connections(self, port: str) -> list[str]:
        lines = self._tool("jack_lsp", "-c", port).stdout.splitlines()
        return [line.strip() for line in lines[1:] if line.startswith((" ", "\t"))]

    def connect(self, source: str, destination: str) -> None:
        self._tool("jack_connect", source, destination)

    def disconnect(self, source: str, destination: str) -> None:
        self._tool("jack_disconnect", source, destination)

    def stop(self) -> None:
        """Terminate PortAudio first (it asserts if its server vanishes under it), then jackd."""
        sd = sys.modules.get("sounddevice") if self.used_here else None
        try:
            while sd is not None and getattr(sd, "_initialized", 0):
                sd._terminate()
        except Exception:  # noqa: BLE001 - the server must go regardless
            pass
        _kill(self.process)
        if sd is not None:  # leave sounddevice usable (without JACK) for anything that runs later
            try:
                sd._initialize()
            except Exception:  # noqa: BLE001
                pass
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_jack_server(rate: int = 44100, period: int = 256, name: str | None = None,
                      use_here: bool = True) -> JackServer:
    """use_here=False: leave this process's libjack alone; run clients in children with child_env()."""
    if not jack_installed():
        raise JackUnavailable("jackd / jack_wait / jack_lsp / jack_connect not found (apt-get install jackd2)")
    name = name or f"neuralcomp-test-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    # Own session: a Ctrl-C on the terminal must not kill the server before PortAudio lets go of it.
    # Dies with this process all the same: PR_SET_PDEATHSIG on Linux, and an atexit handler.
    process = subprocess.Popen(
        ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(rate), "-p", str(period)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    atexit.register(_kill, process)
    waited = subprocess.run(["jack_wait", "-s", name, "-w", "-t", "10"], capture_output=True, text=True, env=env)
    if waited.returncode != 0 or process.poll() is not None:
        if process.poll() is None:
            process.terminate()
        try:
            _, err = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        raise JackUnavailable(f"jackd -n {name} did not start: {waited.stdout.strip()} {(err or b'').decode()[-500:]}")
    saved = {key: os.environ.get(key) for key in _ENV_KEYS} if use_here else {}
    if use_here:
        os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1", JACK_NO_AUDIO_RESERVATION="1")
    # drain jackd's stderr so it can never block on a full pipe
    import threading

    threading.Thread(target=lambda: process.stderr.read(), daemon=True).start()
    time.sleep(0.05)
    return JackServer(name, rate, period, process, saved, use_here)
