"""Tasks of the desktop environment: look at the screen and press keys over VNC."""

from env import background_color, caps_lock

tasks = [
    background_color(),
    caps_lock(),
]
