"""Whether a window (or an OpenGL context through Qt) can be opened here: the one
"is there a display" check that the CLI, the app and the GL backend share.
Qt-free."""

from __future__ import annotations

import os
import sys

HEADLESS_PLATFORMS = ("offscreen", "minimal", "eglfs", "vnc")


def has_display() -> bool:
    """An X11 or Wayland display is named in the environment."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def display_problem() -> str | None:
    """Why Qt could not open a display here (None when it should be able to:
    a display is set, a headless Qt platform was chosen, or not on Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and platform.split(":")[0] in HEADLESS_PLATFORMS:
        return None
    if has_display():
        return None
    return (
        "no display: DISPLAY and WAYLAND_DISPLAY are unset "
        "(run under `xvfb-run -a` or on a desktop session)"
    )
