"""Malformed and hostile readings, generated from a seed: every class the reliability issue names
(bad JSON, wrong types, NaN and Inf, huge numbers, 1 MB strings, missing and unknown fields,
timestamps far in the past or future, odd Unicode in ids), each paired with the reason code the
reading contract gives it. The Python contract (:mod:`sensorwatch.core.contracts`) decides the code,
so the job's dead letters are checked against an independent implementation of the same rules."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

DAY_MS = 86_400_000

ODD_IDS = [
    "dev\u200b01",  # zero-width space
    "d\u00e9v-01",  # accented letter
    "\u202edev-01",  # right-to-left override
    "dev 01",  # space
    "dev/01",  # the sensor separator
    "../../etc/passwd",  # a path
    "dev\x0001",  # NUL
    "\U0001f525fire",  # emoji (outside the BMP)
    "-dev",  # leading dash
    "x" * 65,  # too long
    "",  # empty
    "Ω",  # Greek
    "dev\ud7ff",  # last BMP code point before the surrogates
]


def _valid(rng: random.Random, now_ms: int) -> dict:
    return {
        "device": f"fuzz-{rng.randrange(50):02d}",
        "tag": "temperature",
        "ts": now_ms - rng.randrange(60_000),
        "value": rng.uniform(-50, 50),
    }


def _case(kind: str, rng: random.Random, now_ms: int) -> str | bytes:
    r = _valid(rng, now_ms)
    if kind == "bad_json":
        text = json.dumps(r)
        return rng.choice(
            [
                text[: rng.randrange(1, len(text))],
                text + "}",
                "{device: 'x'}",
                '{"a":}',
                "[1,2",
                "\u00ff\u00fe",
                "{'device': 'd', 'tag': 't', 'ts': 1, 'value': 1}",
                "nul",
                '{"device":"d""tag":1}',
            ]
        )
    if kind == "not_object":
        return json.dumps(rng.choice([[r], "reading", 42, None, True, 1.5]))
    if kind == "wrong_type":
        field = rng.choice(["device", "tag", "ts", "value"])
        r[field] = rng.choice([[1], {"x": 1}, True, None] + ([12] if field in ("device", "tag") else ["abc"]))
        return json.dumps(r)
    if kind == "nan_inf":
        lit = rng.choice(["NaN", "Infinity", "-Infinity", "nan", "inf"])
        return json.dumps(r).replace(json.dumps(r["value"]), lit)
    if kind == "huge_number":
        return json.dumps(r).replace(
            json.dumps(r["value"]), rng.choice(["1e400", "-1e309", "1e13", "-9e15", "1" + "0" * 400])
        )
    if kind == "huge_string":
        r[rng.choice(["device", "tag", "value"])] = "x" * (1 << 20)
        return json.dumps(r)
    if kind == "missing_field":
        del r[rng.choice(list(r))]
        return json.dumps(r)
    if kind == "unknown_field":
        r[rng.choice(["unit", "Value", "__proto__", "extra", "ts2"])] = 1
        return json.dumps(r)
    if kind == "ts_past":
        r["ts"] = now_ms - rng.choice([8 * DAY_MS, 365 * DAY_MS, now_ms])  # beyond 7 days, or epoch 0
        return json.dumps(r)
    if kind == "ts_future":
        r["ts"] = now_ms + rng.choice([10 * 60_000, DAY_MS, 100 * 365 * DAY_MS])
        return json.dumps(r)
    if kind == "bad_ts":
        r["ts"] = rng.choice(["yesterday", "2023-13-45T00:00:00Z", "2023-11-14T22:13:20", -1, 1.5e30])
        return json.dumps(r)
    if kind == "odd_id":
        r[rng.choice(["device", "tag"])] = rng.choice(ODD_IDS)
        return json.dumps(r, ensure_ascii=rng.random() < 0.5)
    if kind == "duplicate_key":
        return json.dumps(r)[:-1] + ', "value": 2}'
    if kind == "empty":
        return rng.choice(["", " ", "\n"])
    if kind == "bad_utf8":
        return b'{"device":"d\xff\xfe","tag":"t","ts":1,"value":1}'
    raise ValueError(kind)


KINDS = [
    "bad_json",
    "not_object",
    "wrong_type",
    "nan_inf",
    "huge_number",
    "huge_string",
    "missing_field",
    "unknown_field",
    "ts_past",
    "ts_future",
    "bad_ts",
    "odd_id",
    "duplicate_key",
    "empty",
]


def hostile(
    n: int, clock: Callable[[], int], seed: int = 7, huge_strings: int = 20
) -> Iterator[tuple[bytes, str, str, int]]:
    """``n`` hostile payloads: (payload bytes, kind, expected reason code, record time). Each is
    made for the record time ``clock()`` gives it (timestamps are judged against it), which the
    sender must then stamp on it. At most ``huge_strings`` are 1 MB strings (they cost broker
    disk, not coverage)."""
    from sensorwatch.core.contracts import ContractError, parse_reading

    rng = random.Random(seed)
    made = big = 0
    while made < n:
        now_ms = clock()
        kind = KINDS[made % len(KINDS)]
        if kind == "huge_string":
            if big >= huge_strings:
                kind = "wrong_type"
            big += 1
        payload = _case(kind, rng, now_ms)
        raw = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")
        try:
            parse_reading(raw, now_ms)
        except ContractError as exc:
            made += 1
            yield raw, kind, exc.code, now_ms
            continue
        raise AssertionError(f"the generator made a valid reading for {kind}: {raw[:200]!r}")
