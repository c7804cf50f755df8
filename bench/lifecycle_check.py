"""The lifecycle's check at scale: which sensors the served versions hold, at N per-sensor models.

``sensorwatch lifecycle`` asks this every ``lifecycle.check_s`` (the new-sensor trigger). The
baseline is the straightforward way, kept here to compare: for each model, models.config
parsed to find its served version, then its report read. The product's way
(:func:`sensorwatch.training.lifecycle._known_sensors`) reads models.config once and each
version's report once per process. Both run on the same repository of N models (report and
an empty ``saved_model.pb`` each: only the files this check reads), and must agree.

    .venv/bin/python bench/lifecycle_check.py [--models 1000]

Ends with one JSON line: {"models", "baseline_s", "first_s", "warm_s", "baseline_over_warm"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)


def main() -> None:
    from sensorwatch.core.config import Settings
    from sensorwatch.serving.repository import REPORT_FILE, ModelRepository, read_report
    from sensorwatch.training.lifecycle import _known_sensors

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=1000)
    n = ap.parse_args().models
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings()
        s.serving.model_base_path = Path(tmp) / "models"
        repo = ModelRepository(s.serving.model_base_path)
        names = []
        for i in range(n):
            name = f"dev-{i:05d}~temp"
            extra = repo.model_dir(name) / "1" / "assets.extra"
            extra.mkdir(parents=True)
            (extra.parent / "saved_model.pb").write_bytes(b"")
            (extra / REPORT_FILE).write_text(json.dumps({"sensors": {f"dev-{i:05d}/temp": {"threshold": 1.0}}}))
            names.append(name)
        repo.register_many(names)

        def baseline() -> set[str]:
            known: set[str] = set()
            for e in repo.read_config():
                v = repo.served_version(e.name)  # models.config parsed again, per model
                if v is not None:
                    known |= set((read_report(repo.model_dir(e.name) / str(v)) or {}).get("sensors", {}))
            return known

        t = time.perf_counter()
        a = baseline()
        t_base = time.perf_counter() - t
        t = time.perf_counter()
        b = _known_sensors(s)
        t_first = time.perf_counter() - t
        t = time.perf_counter()
        c = _known_sensors(s)
        t_warm = time.perf_counter() - t
    assert a == b == c and len(a) == n, "the two ways must agree"
    print(f"{n} models: baseline {t_base:.3f} s, first check {t_first:.3f} s, later checks {t_warm:.4f} s")
    print(f"baseline / later checks: {t_base / t_warm:.0f}x")
    out = {"models": n, "baseline_s": round(t_base, 3), "first_s": round(t_first, 3), "warm_s": round(t_warm, 4)}
    print(json.dumps(out | {"baseline_over_warm": round(t_base / t_warm, 1)}))


if __name__ == "__main__":
    main()
