"""What several command groups print the same way."""

from __future__ import annotations

import json
import time
import typing

from pydantic import BaseModel


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def choices(model: type[BaseModel], field: str) -> list[str]:
    """The values a ``Literal`` configuration field admits: the command line offers exactly those."""
    annotation = model.model_fields[field].annotation
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    return list(typing.get_args(annotation))


def record_line(rec: dict) -> str:
    """One output record as a line: ``sensor window to HH:MM:SS: score > threshold (model vN)``."""
    t = time.strftime("%H:%M:%S", time.gmtime(rec["window_end"] / 1000))
    if rec.get("status", "scored") != "scored":
        return f"{rec['sensor']} window to {t}: {rec['status']} ({rec.get('model_name')})"
    return (
        f"{rec['sensor']} window to {t}: score {rec['score']:.2f} > threshold {rec['threshold']:.2f} "
        f"({rec['model_name']} v{rec['model_version']})"
    )
