"""Audio devices for live sessions: find one by index or name, check what it supports, list them all.

sounddevice (and through it PortAudio) is imported only here and only when needed: PortAudio lists
the audio devices when it is first imported, so an audio server (e.g. JACK) must be running by then.
"""

from __future__ import annotations

from typing import Any

from neuralcomp.errors import LiveAudioError


def sounddevice_module() -> Any:
    """Import sounddevice lazily (PortAudio enumerates devices on import)."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise LiveAudioError(
            f"cannot load PortAudio ({exc}); install it (e.g. `apt-get install libportaudio2`)"
        ) from exc
    return sounddevice


def format_devices(sd: Any = None) -> str:
    """One line per audio device: index, name, host API, channels and default rate."""
    sd = sd or sounddevice_module()
    devices = sd.query_devices()
    if len(devices) == 0:
        return "  (none)"
    apis = sd.query_hostapis()
    lines = []
    for dev in devices:
        api = apis[dev["hostapi"]]["name"] if dev["hostapi"] < len(apis) else "?"
        lines.append(
            f"  {dev['index']:>3} {dev['name']!r} ({api}): {dev['max_input_channels']} in, "
            f"{dev['max_output_channels']} out, default {dev['default_samplerate']:g} Hz"
        )
    return "\n".join(lines)


def _device_spec(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def resolve_device(spec: Any, kind: str, sd: Any = None) -> dict:
    """The device dict (sounddevice.query_devices) for `spec` (index, name or name part, or None
    for the default) with channels of `kind` ("input" or "output"); LiveAudioError otherwise."""
    sd = sd or sounddevice_module()
    devices = sd.query_devices()
    if len(devices) == 0:
        raise LiveAudioError(
            "no audio devices found: PortAudio sees none (is a sound card present, or an audio server "
            "such as JACK running before neuralcomp started?)"
        )
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    spec = _device_spec(spec)
    if spec is None:
        default = sd.default.device[0 if kind == "input" else 1]
        if isinstance(default, str):
            return resolve_device(default, kind, sd)
        if default is None or int(default) < 0:
            candidates = [d for d in devices if d[key] > 0]
            if not candidates:
                raise LiveAudioError(f"no audio device has {kind} channels; devices:\n{format_devices(sd)}")
            return dict(candidates[0])
        spec = int(default)
    if isinstance(spec, int):
        if not 0 <= spec < len(devices):
            raise LiveAudioError(
                f"no audio device with index {spec}; available devices:\n{format_devices(sd)}"
            )
        dev = devices[spec]
    else:
        text = str(spec)
        matches = [d for d in devices if d[key] > 0 and d["name"] == text]
        if not matches:
            matches = [d for d in devices if d[key] > 0 and text.lower() in d["name"].lower()]
        if not matches:
            raise LiveAudioError(
                f"no {kind} device matches {text!r}; available devices:\n{format_devices(sd)}"
            )
        if len(matches) > 1:
            names = ", ".join(f"{d['index']} {d['name']!r}" for d in matches)
            raise LiveAudioError(f"{kind} device {text!r} is ambiguous ({names}); give its index")
        dev = matches[0]
    if dev[key] < 1:
        raise LiveAudioError(
            f"device {dev['index']} {dev['name']!r} has no {kind} channels; available devices:\n"
            f"{format_devices(sd)}"
        )
    return dict(dev)


def check_settings(sd: Any, dev: dict, kind: str, channels: int, samplerate: float) -> None:
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=dev["index"], channels=channels, dtype="float32", samplerate=samplerate)
    except (sd.PortAudioError, ValueError) as exc:
        key = "max_input_channels" if kind == "input" else "max_output_channels"
        raise LiveAudioError(
            f"{kind} device {dev['index']} {dev['name']!r} does not support {channels} channel(s) at "
            f"{samplerate:g} Hz ({exc}); the device has {dev[key]} {kind} channel(s) and runs at "
            f"{dev['default_samplerate']:g} Hz by default"
        ) from exc
