"""Where the shared datasets are: ``../shared`` next to the checkout, or $SENSORWATCH_SHARED.

A clone made elsewhere (CI clones the working checkout) also finds the ``shared/`` beside
the repository it was cloned from, through git's ``remote.origin.url`` when that is a path.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: The checkout: ``src/sensorwatch/core/paths.py`` is three folders below it. In an installed
#: wheel this points into site-packages, where no ``jvm/`` or ``shared/`` is found, as intended.
REPO = Path(__file__).resolve().parents[3]


def _origin_path() -> Path | None:
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    url = url.removeprefix("file://")
    return Path(url).resolve() if url.startswith("/") else None


def shared_dir() -> Path:
    """The first ``shared/`` folder with datasets beside the checkout (or its origin), or the env override."""
    env = os.environ.get("SENSORWATCH_SHARED")
    if env:
        return Path(env)
    roots = [REPO]
    origin = _origin_path()
    if origin is not None:
        roots.append(origin)
    for root in roots:
        for parent in root.parents:
            if (parent / "shared" / "datasets").is_dir():
                return parent / "shared"
    raise FileNotFoundError("no shared/datasets beside the checkout or its origin; set SENSORWATCH_SHARED")


def skab_dir() -> Path:
    return shared_dir() / "datasets" / "skab"
