"""Where the shared datasets are: ``../shared`` next to the checkout, or $SENSORWATCH_SHARED."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The first ``shared/`` folder with datasets in the checkout's parents (or the env override)."""
    env = os.environ.get("SENSORWATCH_SHARED")
    if env:
        return Path(env)
    for parent in REPO.parents:
        if (parent / "shared" / "datasets").is_dir():
            return parent / "shared"
    raise FileNotFoundError("no shared/datasets next to the checkout; set SENSORWATCH_SHARED")


def skab_dir() -> Path:
    return shared_dir() / "datasets" / "skab"
