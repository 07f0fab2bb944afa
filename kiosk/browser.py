"""The command line that runs Chromium full screen under cage."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Flags every kiosk wants: nothing may pop up over the page or wait for a user.
KIOSK_FLAGS = (
    "--kiosk",
    "--ozone-platform=wayland",
    "--no-first-run",
    "--no-default-browser-check",
    "--noerrdialogs",
    "--disable-infobars",
    "--disable-session-crashed-bubble",
    "--disable-features=Translate,TranslateUI,MediaRouter",
    "--disable-translate",
    "--overscroll-history-navigation=0",
    "--password-store=basic",
    "--autoplay-policy=no-user-gesture-required",
    "--check-for-update-interval=31536000",
    "--disable-component-update",
    "--disable-background-networking",
    "--disable-sync",
)


def cage_command(settings, profile: Path, frame_url: str, environ=os.environ) -> list[str]:
    """``cage [-r ...] -- chromium FLAGS URL`` for these settings."""
    rotate = ["-r"] * (output_rotation(settings.rotation, environ) // 90)
    return ["cage", "-d", *rotate, "--", *chromium_command(settings, profile, frame_url)]


def output_rotation(rotation: int, environ=os.environ) -> int:
    """The turn cage gives its output: the configured one, except that an
    unturned output of wlroots' headless backend gets half a turn.

    cage 0.1.4 hands a full-screen window's buffer to the output as it is
    (direct scan-out) unless the output is turned relative to it; a screen
    capture then composes one frame, and wlroots 0.15 redraws only the
    latest damage onto a buffer last drawn before scan-out began: the
    capture is stale or black. A headless output is only ever seen through
    captures, which undo the output's turn, so half a turn shows nothing
    different and keeps the output composed. A real panel keeps scan-out.
    """
    if rotation == 0 and environ.get("WLR_BACKENDS") == "headless":
        return 180
    return rotation


def chromium_command(settings, profile: Path, frame_url: str) -> list[str]:
    flags = [*KIOSK_FLAGS, f"--user-data-dir={profile}"]
    if not settings.pinch_zoom:
        flags.append("--disable-pinch")
    return ["chromium", *flags, *settings.chromium_flags, frame_url]


def forget_crash(profile: Path) -> None:
    """Mark the profile's last session as ended cleanly, so Chromium shows no
    "restore pages?" bubble after it was killed."""
    prefs = profile / "Default" / "Preferences"
    try:
        data = json.loads(prefs.read_text())
    except (OSError, ValueError):
        return
    data.setdefault("profile", {})["exit_type"] = "Normal"
    data["profile"]["exited_cleanly"] = True
    prefs.write_text(json.dumps(data))
