"""The messages between the server and a job's process: small, versioned frames.

A frame is one JSON header line followed by raw payload bytes, so that log bytes
cross as they are (no base64) and a header can be read by eye:

    {"v": 1, "kind": "uart"}\\n<payload>

The same frames are meant to carry a job to and from another host; a receiver
refuses a version it does not know instead of guessing.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

VERSION = 1
#: No frame is larger than this: a payload is chunked below it by the sender.
MAX_FRAME_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024


class ProtocolError(ValueError):
    """A frame that is not one this side can read."""


class Kind(str, enum.Enum):
    START = "start"        # server -> job: the job's spec
    CANCEL = "cancel"      # server -> job: stop as soon as you can
    INPUT = "input"        # server -> job: console text (payload) or a press, while it runs
    UART = "uart"          # job -> server: console bytes, in order, with the board's time
    TIME = "time"          # job -> server: the board's time while it prints nothing
    OTHER = "other"        # job -> server: trace (ITM/SWO) bytes, in order
    TRACE = "trace"        # job -> server: the pin trace (VCD) bytes, in order
    OUTCOME = "outcome"    # job -> server: the run's outcome, the last frame


@dataclass(frozen=True)
class Frame:
    kind: Kind
    fields: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def encode(frame: Frame) -> bytes:
    # default=str: a config value TOML has and JSON lacks (a date) crosses as text
    header = json.dumps({"v": VERSION, "kind": frame.kind.value, **frame.fields},
                        separators=(",", ":"), default=str).encode()
    if b"\n" in header or len(header) > MAX_HEADER_BYTES:
        raise ProtocolError("frame header too large")
    data = header + b"\n" + frame.payload
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(data)} bytes is over {MAX_FRAME_BYTES}")
    return data


def decode(data: bytes) -> Frame:
    header, sep, payload = data.partition(b"\n")
    if not sep or len(header) > MAX_HEADER_BYTES:
        raise ProtocolError("frame has no header line")
    try:
        fields = json.loads(header)
    except ValueError:
        raise ProtocolError("frame header is not JSON") from None
    if not isinstance(fields, dict) or fields.pop("v", None) != VERSION:
        raise ProtocolError(f"frame is not protocol version {VERSION}")
    try:
        kind = Kind(fields.pop("kind"))
    except (KeyError, ValueError):
        raise ProtocolError("frame has an unknown kind") from None
    return Frame(kind, fields, payload)
