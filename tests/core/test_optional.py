"""The optional-dependency helper names the exact extra, and re-raises what it does not recognise."""

from __future__ import annotations

import sys

import pytest

from sensorwatch.core.optional import EXTRA_PACKAGES, MissingExtra, check, require


def test_a_missing_package_of_an_extra_names_the_pip_command(tmp_path, monkeypatch):
    (tmp_path / "needs_missing.py").write_text("import no_such_pkg_for_sensorwatch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra) as exc:
        require("needs_missing", extra="train", packages=("no_such_pkg_for_sensorwatch",))
    assert "pip install 'sensorwatch[train]'" in str(exc.value)
    assert exc.value.missing == "no_such_pkg_for_sensorwatch"


def test_an_import_error_it_does_not_recognise_is_raised_unchanged(tmp_path, monkeypatch):
    """A bug (our own module importing something that is not an extra's) must not read as a missing extra."""
    (tmp_path / "buggy_mod.py").write_text("import no_such_pkg_for_sensorwatch\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as exc:
        require("buggy_mod", extra="serving")
    assert not isinstance(exc.value, MissingExtra)
    (tmp_path / "broken_mod.py").write_text("from json import no_such_name\n")
    with pytest.raises(ImportError) as exc2:
        require("broken_mod", extra="serving")
    assert not isinstance(exc2.value, MissingExtra)


def test_check_finds_a_missing_package_without_importing_it(monkeypatch):
    monkeypatch.setitem(EXTRA_PACKAGES, "train", ("numpy", "no_such_pkg_for_sensorwatch"))
    with pytest.raises(MissingExtra, match="no_such_pkg_for_sensorwatch"):
        check("train")
    monkeypatch.setitem(EXTRA_PACKAGES, "train", ("numpy",))
    before = set(sys.modules)
    check("train")
    assert "tensorflow" not in set(sys.modules) - before
