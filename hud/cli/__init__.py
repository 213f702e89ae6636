"""The `hud` command line."""
