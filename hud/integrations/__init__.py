"""Bridges to other evaluation harnesses (Harbor)."""
