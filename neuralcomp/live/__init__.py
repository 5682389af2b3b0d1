"""Live audio: run an exported model on a sound card (or an audio server such as JACK) in real time.

`session` holds the stream and its callback, `devices` finds and checks audio devices, `terminal`
reads controls typed while it runs, and `report` holds what a run measured and recorded.
"""

from neuralcomp.errors import LiveAudioError
from neuralcomp.live.devices import format_devices, resolve_device
from neuralcomp.live.report import ControlChange, LiveRecording, LiveSummary
from neuralcomp.live.session import DEFAULT_BLOCKSIZE, LiveSession

__all__ = ["DEFAULT_BLOCKSIZE", "ControlChange", "LiveAudioError", "LiveRecording", "LiveSession", "LiveSummary",
           "format_devices", "resolve_device"]
