"""Host side of mcutrain's serial link: the protocol (``framing``, ``messages``, ``sample_encoding``) and a
retrying client (``link``, ``link_transport``).

See docs/protocol.md for the wire format; the device side is firmware/link/.
"""

from mcutrain.host.framing import VERSION, ErrorCode, Frame, FrameDecoder, FrameError, MsgType
from mcutrain.host.link import Link
from mcutrain.host.link_transport import (
    DeviceError,
    LinkClosed,
    LinkError,
    LinkStats,
    LinkTimeout,
    SequenceError,
    VersionMismatch,
)
from mcutrain.host.messages import (
    Ack,
    BlendInfo,
    CheckpointMode,
    EvalResult,
    Info,
    ReplayInfo,
    Result,
    Stats,
)
from mcutrain.host.sample_encoding import Block, Enc, Sample

__all__ = [
    "VERSION",
    "Ack",
    "BlendInfo",
    "Block",
    "CheckpointMode",
    "DeviceError",
    "Enc",
    "ErrorCode",
    "EvalResult",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "Info",
    "Link",
    "LinkClosed",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "MsgType",
    "ReplayInfo",
    "Result",
    "Sample",
    "SequenceError",
    "Stats",
    "VersionMismatch",
]
