"""Tasks of the tools environment: each is solved by calling the MCP server's tools."""

from env import total, vault

tasks = [
    vault(key="alpha"),
    vault(key="delta"),
    total(numbers=[1.5, 2.25, 40]),
]
