"""Message contracts: what travels on each topic, as JSON.

The reading contract is enforced in the JVM by the job (``jvm/flink/.../ReadingParser.java``)
and mirrored here for the simulator, the CLI and tests; ``tests/vectors/readings.json``
holds cases that both must classify alike (same reason code).

* reading     ``{"device", "tag", "ts", "value"}``; ts is epoch ms or ISO-8601 with an offset.
  A sensor is ``device/tag``.
* device message ``{"device", "ts", "values": {"<tag>": <number>, ...}}``: one message per device
  and time (``kafka.topics.readings_format: device``); the same rules, the envelope's rejecting
  the message whole and a value's rejecting that value alone (``DeviceMessageParser.java``,
  ``tests/vectors/device_messages.json``).
* aggregate   ``{"sensor", "device", "tag", "window_start", "window_end", "mean", "stddev", "count",
  "closed_ts"}``; Kafka key ``sensor@window_end``, Kafka timestamp the window end.
* anomaly     see :func:`anomaly_record`; carries sensor, window bounds, the S values,
  score, threshold, model name and version, event and processing times.
* no-model    an anomaly-shaped record with ``"status": "no_model"`` (or ``"error"``) on its own topic.
* late        ``{"sensor", "ts", "value", "watermark", "payload", "topic", "partition", "offset", "kafka_ts"}``
* dead letter ``{"reason", "payload", "topic", "partition", "offset", "kafka_ts"}``:
  the original payload, whole, so nothing is lost.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sensorwatch.core.config import ValidationConfig

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: The statuses of a record that carries a score: by the sensor's (or device's) own model, or
#: by its tag's fleet prior.
SCORED = ("scored", "prior")
MAX_TS = 253402300799999  # 9999-12-31T23:59:59.999Z
_DEFAULT_LIMITS = ValidationConfig()
READING_FIELDS = ("device", "tag", "ts", "value")
DEVICE_MESSAGE_FIELDS = ("device", "ts", "values")

#: Reason codes, identical to ReadingParser.java.
REASON_CODES = (
    "empty",
    "too_large",
    "malformed_json",
    "not_object",
    "unknown_field",
    "missing_field",
    "bad_type",
    "bad_id",
    "bad_ts",
    "bad_value",
    "ts_too_old",
    "ts_in_future",
)


class ContractError(ValueError):
    """A message that violates its contract. ``code`` is one of :data:`REASON_CODES`."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Reading:
    device: str
    tag: str
    ts: int
    value: float

    @property
    def sensor(self) -> str:
        return sensor_id(self.device, self.tag)

    def to_json(self) -> str:
        return json.dumps({"device": self.device, "tag": self.tag, "ts": self.ts, "value": self.value})


def sensor_id(device: str, tag: str) -> str:
    return f"{device}/{tag}"


def split_sensor(sensor: str) -> tuple[str, str]:
    device, _, tag = sensor.partition("/")
    if not tag:
        raise ValueError(f"sensor id {sensor!r} is not device/tag")
    return device, tag


def _trunc(s: str) -> str:
    return s if len(s) <= 80 else f"{s[:80]}...({len(s)} chars)"


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _reject_constant(name: str) -> float:
    raise ContractError("malformed_json", f"non-standard number {name}")


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ContractError("malformed_json", f"duplicate field {k!r}")
        out[k] = v
    return out


def parse_ts(raw: Any) -> int:
    """Epoch ms from an integer or an ISO-8601 string with an offset."""
    if isinstance(raw, bool) or raw is None or isinstance(raw, (float, list, dict)):
        raise ContractError("bad_type", f"ts must be epoch milliseconds or an ISO-8601 string, got {_kind(raw)}")
    if isinstance(raw, int):
        if not -(2**63) <= raw < 2**63:
            raise ContractError("bad_ts", f"ts {_trunc(str(raw))} is out of range")
        return raw
    try:
        dt = datetime.fromisoformat(raw)
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None or "T" not in raw:
        raise ContractError("bad_ts", f"ts string must be ISO-8601 with a UTC offset, got {_trunc(raw)!r}")
    return int(dt.timestamp() * 1000)


def _load_object(payload: str | bytes | None, limits: ValidationConfig) -> dict[str, Any]:
    """The payload as a JSON object, or :class:`ContractError` (the envelope's rules, in order)."""
    if payload is None:
        raise ContractError("empty", "record has no value")
    raw = payload.encode() if isinstance(payload, str) else payload
    if len(raw) > limits.max_payload_bytes:
        raise ContractError("too_large", f"payload of {len(raw)} bytes exceeds {limits.max_payload_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError("malformed_json", f"not UTF-8: {exc.reason}") from None
    if not text.strip():
        raise ContractError("empty", "payload is empty")
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ContractError("malformed_json", exc.msg) from None
    except RecursionError:
        raise ContractError("malformed_json", "nesting too deep") from None
    if not isinstance(obj, dict):
        raise ContractError("not_object", f"payload is a JSON {_kind(obj)}, not an object")
    return obj


def _check_id(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ContractError("bad_type", f"{name} must be a string, got {_kind(v)}")
    if not ID_PATTERN.fullmatch(v):
        raise ContractError("bad_id", f"{name} must match {ID_PATTERN.pattern}, got {_trunc(v)!r}")
    return v


def _check_value(v: Any, limits: ValidationConfig) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ContractError("bad_type", f"value must be a number, got {_kind(v)}")
    value = float(v) if not isinstance(v, int) or abs(v) < 2**1023 else math.inf
    if not math.isfinite(value):
        raise ContractError("bad_value", f"value {_trunc(str(v))} is not finite")
    if abs(value) > limits.max_abs_value:
        raise ContractError("bad_value", f"value {_trunc(str(v))} exceeds |{limits.max_abs_value}|")
    return value


def _check_time(ts: int, kafka_ts: int | None, limits: ValidationConfig) -> None:
    if ts < 0 or ts > MAX_TS:
        raise ContractError("bad_ts", f"ts {ts} is outside year 1970..9999")
    if kafka_ts is not None:
        if ts < kafka_ts - limits.max_past_ms:
            raise ContractError(
                "ts_too_old", f"ts {ts} is more than {limits.max_past_ms} ms before the record time {kafka_ts}"
            )
        if ts > kafka_ts + limits.max_future_ms:
            raise ContractError(
                "ts_in_future", f"ts {ts} is more than {limits.max_future_ms} ms after the record time {kafka_ts}"
            )


def parse_reading(
    payload: str | bytes | None, kafka_ts: int | None = None, limits: ValidationConfig = _DEFAULT_LIMITS
) -> Reading:
    """Validate one reading payload; raise :class:`ContractError` with a reason code."""
    obj = _load_object(payload, limits)
    for key in obj:
        if key not in READING_FIELDS:
            raise ContractError("unknown_field", f"unknown field {_trunc(key)!r}")
    ids = {name: _check_id(name, obj[name]) for name in ("device", "tag") if name in obj}
    ts = parse_ts(obj["ts"]) if "ts" in obj else None
    value = _check_value(obj["value"], limits) if "value" in obj else None
    for name in READING_FIELDS:
        if name not in obj:
            raise ContractError("missing_field", f'missing field "{name}"')
    assert ts is not None and value is not None
    _check_time(ts, kafka_ts, limits)
    return Reading(ids["device"], ids["tag"], ts, value)


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """A readable device message: its readings, and the values rejected alone (tag, error)."""

    device: str
    ts: int
    readings: tuple[Reading, ...]
    rejected: tuple[tuple[str, ContractError], ...]

    def to_json(self) -> str:
        return device_message(self.device, self.ts, {r.tag: r.value for r in self.readings})


def device_message(device: str, ts: int, values: dict[str, float]) -> str:
    """The device-message payload ``{"device", "ts", "values": {tag: value}}``."""
    return json.dumps({"device": device, "ts": ts, "values": values})


def parse_device_message(
    payload: str | bytes | None, kafka_ts: int | None = None, limits: ValidationConfig = _DEFAULT_LIMITS
) -> DeviceMessage:
    """Validate one device message (``DeviceMessageParser.java``'s rules).

    The envelope (syntax, fields, device, ts, size) raises :class:`ContractError`: the message
    is rejected whole. A value that breaks its own rules (its tag is not an id; not a finite
    number in range) is rejected alone, into ``rejected``, and the others are kept.

    >>> m = parse_device_message('{"device": "p-1", "ts": 5, "values": {"flow": 2, "power": "high"}}')
    >>> [r.sensor for r in m.readings], [(tag, e.code) for tag, e in m.rejected]
    (['p-1/flow'], [('power', 'bad_type')])
    """
    obj = _load_object(payload, limits)
    for key in obj:
        if key not in DEVICE_MESSAGE_FIELDS:
            raise ContractError("unknown_field", f"unknown field {_trunc(key)!r}")
    device = _check_id("device", obj["device"]) if "device" in obj else None
    ts = parse_ts(obj["ts"]) if "ts" in obj else None
    values = obj.get("values")
    if "values" in obj and not isinstance(values, dict):
        raise ContractError("bad_type", f"values must be an object of tag: number, got {_kind(values)}")
    for name in DEVICE_MESSAGE_FIELDS:
        if name not in obj:
            raise ContractError("missing_field", f'missing field "{name}"')
    assert device is not None and ts is not None and isinstance(values, dict)
    if not values:
        raise ContractError("empty", "values holds no tag")
    _check_time(ts, kafka_ts, limits)
    readings, rejected = [], []
    for tag, v in values.items():
        try:
            if not ID_PATTERN.fullmatch(tag):
                raise ContractError("bad_id", f"values key must match {ID_PATTERN.pattern}, got {_trunc(tag)!r}")
            readings.append(Reading(device, tag, ts, _check_value(v, limits)))
        except ContractError as exc:
            rejected.append((tag, ContractError(exc.code, f"values.{_trunc(tag)}: {exc.detail}")))
    return DeviceMessage(device, ts, tuple(readings), tuple(rejected))


def aggregate_record(
    sensor: str, window_start: int, window_end: int, mean: float, stddev: float, count: int
) -> dict[str, Any]:
    """One tumbling window of one sensor, as the job publishes it to the aggregates topic (training data)."""
    device, tag = split_sensor(sensor)
    return {
        "sensor": sensor,
        "device": device,
        "tag": tag,
        "window_start": window_start,
        "window_end": window_end,
        "mean": mean,
        "stddev": stddev,
        "count": count,
    }


def anomaly_record(
    *,
    sensor: str,
    window_start: int,
    window_end: int,
    values: list[float],
    score: float | None,
    threshold: float | None,
    is_anomaly: bool,
    model_name: str | None,
    model_version: int | None,
    processing_ts: int,
    status: str = "scored",
    per_step_error: list[float] | None = None,
    window_closed_ts: int | None = None,
    stddev: list[float] | None = None,
    counts: list[float] | None = None,
    error: str | None = None,
    tags: list[dict[str, Any]] | None = None,
    unknown_tags: list[str] | None = None,
) -> dict[str, Any]:
    """The record consumers of the anomalies (and scores, no-model) topics receive.

    ``event_ts`` is the window end: the event time at which the evidence was complete.
    ``key`` is unique per sensor and window, so an at-least-once consumer can drop repeats.
    ``window_closed_ts`` is the wall-clock time the job closed the last tumbling window;
    ``processing_ts`` minus it is the job's scoring latency. ``status`` is ``scored``,
    ``prior`` (the sensor has no model of its own yet and its tag's fleet prior scored the
    window: :mod:`sensorwatch.core.prior`), ``no_model`` (no model serves this sensor, nor a
    prior its tag) or ``error`` (the model server refused the window; ``error`` says why).

    A device model's record (``sensor`` is then the device, ``tag`` None, ``granularity``
    ``device``): ``values``, ``stddev`` and ``counts`` map each tag to its S values (None where
    the tag had no reading in a step); ``tags`` lists the tags that drove the score,
    ``{"tag", "share"}`` by share of the model's error, largest first; ``unknown_tags`` the tags
    the device sent that its model does not know (reported on the no-model topic too).
    """
    device_window = "/" not in sensor
    device, tag = (sensor, None) if device_window else split_sensor(sensor)
    return {
        "key": f"{sensor}@{window_end}",
        "status": status,
        "granularity": "device" if device_window else "sensor",
        "sensor": sensor,
        "device": device,
        "tag": tag,
        "window_start": window_start,
        "window_end": window_end,
        "values": values,
        "score": score,
        "threshold": threshold,
        "is_anomaly": is_anomaly,
        "model_name": model_name,
        "model_version": model_version,
        "event_ts": window_end,
        "processing_ts": processing_ts,
        "per_step_error": per_step_error,
        "stddev": stddev,
        "counts": counts,
        "window_closed_ts": window_closed_ts,
        "error": error,
        "tags": tags,
        "unknown_tags": unknown_tags,
    }


def dead_letter_record(
    reason: str,
    payload: str | None,
    topic: str,
    partition: int | None,
    offset: int | None,
    kafka_ts: int | None,
    max_payload_chars: int = 65536,
) -> dict[str, Any]:
    """The dead-letter contract (the job writes the same in SQL): the payload whole up to
    ``max_payload_chars`` (``job.validation.dead_letter_payload_chars``), else its head; the
    original stays addressable in its topic at ``partition``/``offset``."""
    cut = payload is not None and len(payload) > max_payload_chars
    return {
        "reason": reason,
        "payload": payload[:max_payload_chars] if cut else payload,
        "payload_truncated": cut,
        "payload_chars": None if payload is None else len(payload),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "kafka_ts": kafka_ts,
    }
