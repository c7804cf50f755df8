import json
from pathlib import Path

import pytest

from sensorwatch.contracts import REASON_CODES, ContractError, Limits, parse_reading

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "readings.json").read_text())
LIMITS = Limits(**VECTORS["limits"])


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
        parse_reading("[" * 3000 + "]" * 3000, limits=Limits(max_payload_bytes=10_000))
    assert exc.value.code in {"malformed_json", "not_object"}


def test_reading_round_trips_through_json():
    r = parse_reading('{"device":"d","tag":"t","ts":5,"value":2.5}')
    assert parse_reading(r.to_json()) == r
    assert r.sensor == "d/t"
