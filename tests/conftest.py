"""Shared fixtures: temporary logs and the real market data in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.log import EventLog

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def log(tmp_path: Path):
    lg = EventLog.open(tmp_path / "log")
    yield lg
    lg.close()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real market data folder {SHARED_DATA} is absent (it lives beside the project as ../shared/data)")
    return SHARED_DATA
