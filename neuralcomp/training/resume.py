"""What lets training stop and continue bit for bit: the Ctrl-C request that stops the loop at an
iteration boundary (so a checkpoint is saved), and the generator states that every checkpoint holds."""

from __future__ import annotations

import random
import signal
import sys
import threading
from typing import Any

import numpy as np
import torch


class InterruptRequest:
    """While entered (on the main thread): the first Ctrl-C only sets `requested`, so the loop can stop at
    an iteration boundary and save a checkpoint; a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: Any = signal.default_int_handler

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        print("\nCtrl-C: stopping after this iteration and saving a checkpoint (Ctrl-C again: stop now, unsaved)",
              file=sys.stderr, flush=True)

    def __enter__(self) -> "InterruptRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle) or signal.default_int_handler
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed and signal.getsignal(signal.SIGINT) == self._handle:
            signal.signal(signal.SIGINT, self._previous)
        self._installed = False


def random_states() -> dict[str, Any]:
    """torch, numpy and Python generator states as tensors and plain lists, so that a training state
    file loads with torch.load(weights_only=True)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next}}


def restore_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
