"""Reusable widgets of the TUI."""

from __future__ import annotations
