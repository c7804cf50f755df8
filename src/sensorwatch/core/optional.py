"""Optional dependencies: which extra brings each, and one error that names the exact install.

sensorwatch's core installs light (no TensorFlow, no Flink); the model server, the job and
training come with the extras ``serving``, ``job`` and ``train``. When one of their imports
fails for want of a package, :func:`require` raises :class:`MissingExtra` naming the
``pip install 'sensorwatch[extra]'`` that fixes it. An ImportError it does not recognise (a
broken install, a bug in our own module) is re-raised unchanged, never reported as a
missing extra.

>>> require("json", extra="train").__name__
'json'
>>> try:
...     require("no_such_package_xyz", extra="train", packages=("no_such_package_xyz",))
... except MissingExtra as exc:
...     print(exc)
sensorwatch[train] is needed for this (missing: no_such_package_xyz): pip install 'sensorwatch[train]'
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: Top-level import names each extra installs (what a missing one looks like).
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {
    "serving": ("tensorflow", "tensorflow_serving", "grpc", "google.protobuf"),
    "job": ("pyflink", "tensorflow_serving", "grpc", "google.protobuf", "apache_beam"),
    "train": ("tensorflow", "keras", "sklearn", "matplotlib", "optuna", "tqdm", "pandas", "pyarrow", "mlflow"),
    "ui": ("starlette", "uvicorn", "jinja2", "sse_starlette", "grpc", "tensorflow_serving"),
}


class MissingExtra(ImportError):
    """A package of an optional extra is not installed; the message names the pip command."""

    def __init__(self, extra: str, missing: str):
        super().__init__(
            f"sensorwatch[{extra}] is needed for this (missing: {missing}): pip install 'sensorwatch[{extra}]'"
        )
        self.extra = extra
        self.missing = missing


def _belongs(name: str | None, packages: tuple[str, ...]) -> bool:
    return bool(name) and any(name == p or name.startswith(p + ".") for p in packages)


def require(module: str, extra: str, packages: tuple[str, ...] | None = None) -> ModuleType:
    """Import ``module``; a missing package of ``extra`` becomes :class:`MissingExtra`."""
    known = EXTRA_PACKAGES[extra] if packages is None else packages
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _belongs(exc.name, known):
            raise MissingExtra(extra, str(exc.name)) from exc
        raise


def check(extra: str) -> None:
    """Raise :class:`MissingExtra` unless every package of ``extra`` is installed.

    Looks the packages up without importing them (TensorFlow alone takes seconds to import),
    so a command can say what is missing before it starts any work.
    """
    for pkg in EXTRA_PACKAGES[extra]:
        top = pkg.split(".")[0]
        if importlib.util.find_spec(top) is None:
            raise MissingExtra(extra, top)


class MissingSystemPackage(RuntimeError):
    """A program from a Debian package is not installed; the message names the apt-get command."""

    def __init__(self, program: str, package: str):
        super().__init__(f"{program} not found: apt-get install {package}")
        self.program, self.package = program, package


def system_program(program: str, package: str) -> str:
    """The path of ``program`` on PATH, or :class:`MissingSystemPackage` naming ``package``.

    >>> try:
    ...     system_program("no-such-program-xyz", "no-such-package")
    ... except MissingSystemPackage as exc:
    ...     print(exc)
    no-such-program-xyz not found: apt-get install no-such-package
    """
    import shutil

    path = shutil.which(program)
    if path is None:
        raise MissingSystemPackage(program, package)
    return path
