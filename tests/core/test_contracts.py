import json
from pathlib import Path

import pytest

from sensorwatch.core.config import ValidationConfig
from sensorwatch.core.contracts import REASON_CODES, ContractError, parse_device_message, parse_reading

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "readings.json").read_text())
LIMITS = ValidationConfig(**VECTORS["limits"])
DEVICE_VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "device_messages.json").read_text())


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["expect"])
def test_python_contract_matches_shared_vectors(case):
    if case["expect"] == "ok":
        r = parse_reading(case["payload"], case["kafka_ts"], LIMITS)
        assert [r.device, r.tag, r.ts, r.value] == case["reading"]
    else:
        with pytest.raises(ContractError) as exc:
            parse_reading(case["payload"], case["kafka_ts"], LIMITS)
        assert exc.value.code == case["expect"], str(exc.value)
        assert str(exc.value).startswith(case["expect"])


def test_vectors_cover_every_reason_code():
    assert {c["expect"] for c in VECTORS["cases"]} - {"ok"} == set(REASON_CODES)


@pytest.mark.parametrize("case", DEVICE_VECTORS["cases"], ids=lambda c: c["expect"])
def test_python_device_message_contract_matches_shared_vectors(case):
    """A message's envelope rejects it whole; a value rejected alone leaves the others kept.
    A value whose tag is not an id has no tag in the job's row (None here too)."""
    limits = ValidationConfig(**DEVICE_VECTORS["limits"])
    if case["expect"] == "ok":
        m = parse_device_message(case["payload"], case["kafka_ts"], limits)
        assert [[r.device, r.tag, r.ts, r.value] for r in m.readings] == case["readings"]
        assert [[None if e.code == "bad_id" else tag, e.code] for tag, e in m.rejected] == case["rejected"]
        assert all(str(e).startswith(f"{e.code}: values.") for _tag, e in m.rejected)
    else:
        with pytest.raises(ContractError) as exc:
            parse_device_message(case["payload"], case["kafka_ts"], limits)
        assert exc.value.code == case["expect"], str(exc.value)


def test_device_vectors_cover_every_reason_code():
    cases = DEVICE_VECTORS["cases"]
    envelope = {c["expect"] for c in cases} - {"ok"}
    values = {code for c in cases if c["expect"] == "ok" for _tag, code in c["rejected"]}
    assert envelope | values == set(REASON_CODES)
    assert values == {"bad_type", "bad_value", "bad_id"}


def test_device_message_round_trips_through_json():
    m = parse_device_message('{"device":"d","ts":5,"values":{"a":2.5,"b":-1}}')
    assert parse_device_message(m.to_json()) == m
    assert [r.sensor for r in m.readings] == ["d/a", "d/b"] and m.rejected == ()


def test_invalid_utf8_is_rejected_with_reason():
    with pytest.raises(ContractError, match="malformed_json: not UTF-8"):
        parse_reading(b'{"device":"\xff"}')


def test_deep_nesting_is_rejected_not_crashing():
    with pytest.raises(ContractError) as exc:
        parse_reading("[" * 3000 + "]" * 3000, limits=ValidationConfig(max_payload_bytes=10_000))
    assert exc.value.code in {"malformed_json", "not_object"}


def test_reading_round_trips_through_json():
    r = parse_reading('{"device":"d","tag":"t","ts":5,"value":2.5}')
    assert parse_reading(r.to_json()) == r
    assert r.sensor == "d/t"


def test_dead_letter_record_keeps_short_payloads_whole_and_cuts_long_ones():
    import inspect

    from sensorwatch.core.config import ValidationConfig
    from sensorwatch.core.contracts import dead_letter_record

    short = dead_letter_record("bad_ts: x", '{"ts": "x"}', "t", 0, 1, 2, max_payload_chars=1024)
    assert short["payload"] == '{"ts": "x"}' and short["payload_truncated"] is False and short["payload_chars"] == 11
    long = dead_letter_record("too_large: x", "é" * 5000, "t", 0, 1, 2, max_payload_chars=1024)
    assert long["payload"] == "é" * 1024 and long["payload_truncated"] is True and long["payload_chars"] == 5000
    none = dead_letter_record("empty", None, "t", 0, 1, 2)
    assert none["payload"] is None and none["payload_truncated"] is False and none["payload_chars"] is None
    # the mirror's default is the job's (the SQL cut comes from the configuration)
    default = inspect.signature(dead_letter_record).parameters["max_payload_chars"].default
    assert default == ValidationConfig().dead_letter_payload_chars
