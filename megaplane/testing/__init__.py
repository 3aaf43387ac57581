"""Test kit shipped with the package: fakes for what a test cannot have for real.

Owns deterministic time (`FakeClock`, `AutoAdvanceClock`: `clock.py`).
"""

from __future__ import annotations

from .clock import AutoAdvanceClock, FakeClock, FakeTimer

__all__ = ["AutoAdvanceClock", "FakeClock", "FakeTimer"]
