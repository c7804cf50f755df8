"""What several command groups print, or read from the command line, the same way."""

from __future__ import annotations

import argparse
import json
import re
import time
import typing

from pydantic import BaseModel

from sensorwatch.core.contracts import SCORED
from sensorwatch.core.incidents import explanation_phrase


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def choices(model: type[BaseModel], field: str) -> list[str]:
    """The values a ``Literal`` configuration field admits: the command line offers exactly those."""
    annotation = model.model_fields[field].annotation
    if typing.get_origin(annotation) is list:
        (annotation,) = typing.get_args(annotation)
    return list(typing.get_args(annotation))


def incident_line(rec: dict) -> str:
    """One incident record as a line: ``OPENED sensor since HH:MM:SS severity 72 (level_shift in values) ...``."""

    def hms(ms: int | None) -> str:
        return "-" if ms is None else time.strftime("%H:%M:%S", time.gmtime(ms / 1000))

    what = explanation_phrase(rec.get("explanation"))
    span = f"since {hms(rec['start'])}" if rec["event"] == "opened" else f"{hms(rec['start'])} to {hms(rec['end'])}"
    learning = " [learning: not alerted]" if rec.get("learning") else ""
    return (
        f"{rec['event'].upper():<6} {rec['sensor']} {span}: severity {rec['severity']}, {what}, "
        f"peak score {rec['peak_score']:.2f} (threshold {rec['threshold']:.2f}, {rec['model_name']} "
        f"v{rec['model_version']}){learning}"
    )


def record_line(rec: dict) -> str:
    """One output record as a line: ``sensor window to HH:MM:SS: score > threshold (model vN)``."""
    t = time.strftime("%H:%M:%S", time.gmtime(rec["window_end"] / 1000))
    status = rec.get("status", "scored")
    if status not in SCORED:
        return f"{rec['sensor']} window to {t}: {status} ({rec.get('model_name')})"
    return (
        f"{rec['sensor']} window to {t}: score {rec['score']:.2f} > threshold {rec['threshold']:.2f} "
        f"({rec['model_name']} v{rec['model_version']}{', fleet prior' if status == 'prior' else ''})"
    )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1d`` or plain seconds -> seconds.

    >>> parse_duration("2h"), parse_duration("90"), parse_duration("1.5m")
    (7200.0, 90.0, 90.0)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (say 90s, 30m, 2h or 1d)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]
