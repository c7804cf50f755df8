import json
from pathlib import Path

import pytest

from sensorwatch.core.config import ValidationConfig
from sensorwatch.core.contracts import REASON_CODES, ContractError, parse_reading

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "readings.json").read_text())
LIMITS = ValidationConfig(**VECTORS["limits"])


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
