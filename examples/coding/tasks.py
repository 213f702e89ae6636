"""Tasks of the coding environment: each is solved through the workspace shell (SSH)."""

from env import count_log, fix_bug, write_file

tasks = [
    fix_bug(),
    write_file(name="notes/hello.txt", content="hello from the agent"),
    count_log(level="ERROR"),
    count_log(level="WARN"),
]
