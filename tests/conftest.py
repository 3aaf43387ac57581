"""Shared fixtures: where real external binaries live, and scale knobs for slow tests."""

from __future__ import annotations

import os

import pytest

# MEGAPLANE_SCALE=ci (the default) keeps slow scale tests bounded; =full runs them large.
SCALE = os.environ.get("MEGAPLANE_SCALE", "ci")


@pytest.fixture
def scale() -> str:
    return SCALE
