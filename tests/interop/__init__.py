"""Interop tests against the official `hud` package (run as a black box from `.peer/hud`)."""
