"""Wider HTTP/2 flow-control windows and frames for the 8935 server than Hypercorn advertises.

Hypercorn keeps HTTP/2's defaults on the receiving side: a 64 KiB window per stream and per
connection and 16 KiB frames (its ``h2_max_inbound_frame_size`` setting never reaches the
SETTINGS frame, because ``H2Protocol.__init__`` replaces ``local_settings`` afterwards). A
gateway uploading a ~125 kB segment then sends it in 16 KiB frames and stops twice to wait for
WINDOW_UPDATEs, which costs milliseconds on every segment (docs/benchmarks.md). Hypercorn has no
setting or hook for this, so ``install`` wraps ``H2Protocol.__init__`` to advertise the sizes
below and keep h2's own bookkeeping consistent with what was advertised:

- the stream window and frame size go into the SETTINGS frame (h2 treats initial values as
  already in force, which is safe: a peer that has not seen them yet sends less, not more);
- h2 only enlarges the frame size it accepts when the peer ACKs the SETTINGS, and refuses a
  frame above it as a protocol error, so the decoder's limit is raised at once;
- the connection window is not a setting: it grows by a WINDOW_UPDATE on stream 0 sent right
  after the SETTINGS frame.

Windows bound memory per connection, not per request: the body of a request still only waits
in the ASGI queue until the app reads it (``server/service.py`` reads it at once).
"""

from __future__ import annotations

from typing import Any

import h2.connection
import h2.settings
from hypercorn.protocol.h2 import H2Protocol

STREAM_WINDOW = 16 * 1024 * 1024       # larger than any segment or rendition lpnode sees
CONNECTION_WINDOW = 64 * 1024 * 1024   # a few uploads in flight at once on one connection
MAX_FRAME = 1024 * 1024                # a segment in a handful of DATA frames

_INSTALLED = "_lpnode_wide_windows"


def _widen(connection: h2.connection.H2Connection) -> None:
    settings = connection.local_settings
    values: dict[h2.settings.SettingCodes | int, int] = {code: settings[code] for code in settings}
    values[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = STREAM_WINDOW
    values[h2.settings.SettingCodes.MAX_FRAME_SIZE] = MAX_FRAME
    connection.local_settings = h2.settings.Settings(
        client=False, initial_values=values)  # type: ignore[arg-type]  # h2 takes int codes too
    connection.max_inbound_frame_size = MAX_FRAME
    connection.incoming_buffer.max_frame_size = MAX_FRAME

    start = connection.initiate_connection

    def initiate_connection() -> None:
        start()
        connection.increment_flow_control_window(
            CONNECTION_WINDOW - connection.inbound_flow_control_window)

    # The upgrade path (h2c from HTTP/1.1) is not used on 8935 (TLS + ALPN only) and keeps
    # the defaults.
    connection.initiate_connection = initiate_connection  # type: ignore[method-assign]  # no hook: see above


def install() -> None:
    """Make every Hypercorn HTTP/2 connection in this process advertise the wide windows.
    Idempotent."""
    if getattr(H2Protocol, _INSTALLED, False):
        return
    original = H2Protocol.__init__

    def __init__(self: H2Protocol, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _widen(self.connection)

    H2Protocol.__init__ = __init__  # type: ignore[method-assign]  # no hook: see above
    setattr(H2Protocol, _INSTALLED, True)
