"""The device's kiosk: cage (a Wayland kiosk compositor) running Chromium
full screen on the gateway's page, kept alive by a page heartbeat."""
