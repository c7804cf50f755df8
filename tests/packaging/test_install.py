"""What installing sensorwatch puts on ``sys.path``: one import name, and imports static tools resolve.

* The wheel holds one top-level package, ``sensorwatch``. Run outside the checkout from that
  wheel alone (the virtualenv's other packages beside it, no editable path), ``import jobs``,
  ``udfs``, ``serving`` and ``training`` fail and every ``sensorwatch.*`` module imports.
* The editable install is a plain path entry for ``src/``: mypy, run outside the checkout
  against the virtualenv's interpreter, resolves every ``sensorwatch.*`` module from it.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import sensorwatch

pytestmark = pytest.mark.integration  # builds a wheel, imports TensorFlow and PyFlink, runs mypy

REPO = Path(__file__).resolve().parents[2]
GENERIC = ("jobs", "udfs", "serving", "training")


def all_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.walk_packages(sensorwatch.__path__, "sensorwatch.") if not m.name.endswith("__main__")
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
        cwd=out,
    )
    (whl,) = out.glob("sensorwatch-*.whl")
    return whl


def test_the_wheel_installs_only_the_sensorwatch_import_name(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"sensorwatch", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    assert "sensorwatch/jobs/anomaly_job.py" in names and "sensorwatch/app/cli/__init__.py" in names
    assert "sensorwatch/py.typed" in names
    # the dashboard's templates and assets ship with it
    here = Path(__file__).resolve().parents[2] / "src"
    for sub in ("dashboard/templates", "dashboard/static"):
        for f in (here / "sensorwatch" / sub).iterdir():
            assert f"sensorwatch/{sub}/{f.name}" in names, f.name

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = f"""
import importlib, json, sys
sys.path[:] = [{str(site)!r}, {sysconfig.get_paths()["purelib"]!r}] + [p for p in sys.path if "site-packages" not in p]
out = {{"generic": {{}}, "failed": {{}}}}
for name in {list(GENERIC)!r}:
    try:
        importlib.import_module(name)
        out["generic"][name] = "imported"
    except ModuleNotFoundError as exc:
        out["generic"][name] = exc.name
for name in {all_modules()!r}:
    try:
        mod = importlib.import_module(name)
        assert mod.__file__.startswith({str(site)!r}), mod.__file__
    except Exception as exc:
        out["failed"][name] = repr(exc)
print(json.dumps(out))
"""
    # -S: no site-packages processing, so the checkout's editable path entry is not there either
    r = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["generic"] == {name: name for name in GENERIC}, out["generic"]
    assert out["failed"] == {}


def test_static_tools_resolve_every_import_from_the_editable_install(tmp_path):
    mods = all_modules()
    probe = tmp_path / "probe.py"
    probe.write_text("".join(f"import {m}\n" for m in mods))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--python-executable",
            sys.executable,
            "--follow-imports=skip",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(probe),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    unresolved = [ln for ln in r.stdout.splitlines() if "import-not-found" in ln or "Cannot find implementation" in ln]
    assert not unresolved, "\n".join(unresolved)
    assert r.returncode == 0, r.stdout[-3000:]
    assert len(mods) > 50
