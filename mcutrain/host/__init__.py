"""Host side of mcutrain's serial link: the protocol (``protocol``) and a retrying client (``link``).

See docs/protocol.md for the wire format; the device side is firmware/link/.
"""

from mcutrain.host.link import (
    DeviceError,
    Link,
    LinkClosed,
    LinkError,
    LinkStats,
    LinkTimeout,
    SequenceError,
    VersionMismatch,
)
from mcutrain.host.protocol import (
    VERSION,
    Ack,
    Block,
    CheckpointMode,
    Enc,
    ErrorCode,
    EvalResult,
    Frame,
    FrameDecoder,
    FrameError,
    Info,
    MsgType,
    Result,
    Sample,
    Stats,
)

__all__ = [
    "VERSION",
    "Ack",
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
    "Result",
    "Sample",
    "SequenceError",
    "Stats",
    "VersionMismatch",
]
