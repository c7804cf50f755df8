"""10,000 malformed and hostile readings mixed into a live fleet's traffic: every one lands in
the dead-letter topic with the reason the reading contract gives it, the job never fails, and
the honest readings are still aggregated and scored."""

from __future__ import annotations

import collections
import threading
import time

import pytest
from hostile import hostile

from jobworld import UNTRAINED, Ledger, fresh_topics
from sensorwatch.app import local
from sensorwatch.core.kafka import producer
from sensorwatch.jobs.pipeline import run
from sensorwatch.simulate import Fleet, simulate

pytestmark = pytest.mark.integration  # real parts: see the marker in pyproject.toml

N_HOSTILE = 10_000


def test_hostile_readings_are_dead_lettered_and_the_job_keeps_scoring(world):
    s = fresh_topics(world)
    s.job.emit_scores = True
    s.simulator.malformed_rate = 0.0
    fleet = Fleet(s.simulator)
    sent: dict[tuple[int, int], tuple[bytes, str, str]] = {}  # (partition, offset) -> case
    job = run(s, detached=True)
    try:
        t0 = time.monotonic()
        speed = s.simulator.speed

        def send_hostile() -> None:
            """Interleaved with the fleet, stamped a little behind its event time, as a device
            whose clock agrees with its honest neighbours would stamp them."""
            p = producer(s.kafka, acks="all", max_request_size=s.stack.message_max_bytes)
            pending = []

            def clock() -> int:
                stamp = fleet.start_ms + int((time.monotonic() - t0) * speed * 1000) - 5000
                return max(min(stamp, fleet.end_ms), fleet.start_ms)

            for i, (payload, kind, code, stamp) in enumerate(hostile(N_HOSTILE, clock, seed=11)):
                pending.append(
                    (
                        p.send(s.kafka.topics.readings, payload, key=b"fuzz%d" % (i % 97), timestamp_ms=stamp),
                        (payload, kind, code),
                    )
                )
                if i % 500 == 499:
                    time.sleep(0.5)
            p.flush(60)
            for fut, case in pending:
                md = fut.get(timeout=60)
                sent[(md.partition, md.offset)] = case
            p.close()

        sender = threading.Thread(target=send_hostile)
        sender.start()
        stats = simulate(s.simulator, s.kafka, fleet=fleet)
        sender.join(300)
        assert len(sent) == N_HOSTILE
        local.flush_watermark(s, fleet.end_ms + 120_000)
        ledger = Ledger(s)
        ledger.read_inputs(stats.readings + N_HOSTILE, timeout_s=240)
        ledger.read_outputs(timeout_s=120)
        status = job.get_job_status().result()
    finally:
        job.cancel().result()

    # the job never failed
    assert str(status).endswith("RUNNING"), status
    # every hostile reading is a dead letter, found by its Kafka coordinates, with the whole
    # payload and the reason the Python contract gives (an independent implementation)
    dead = {(d["partition"], d["offset"]): d for d in ledger.dead.values() if d["topic"] == s.kafka.topics.readings}
    missing = set(sent) - set(dead)
    assert not missing, (
        f"{len(missing)} hostile readings not dead-lettered, e.g. {[sent[m][:2] for m in list(missing)[:3]]}"
    )
    wrong = [(sent[k][1], sent[k][2], dead[k]["reason"]) for k in sent if dead[k]["reason"].split(":")[0] != sent[k][2]]
    assert not wrong, f"{len(wrong)} reasons differ from the contract's: {collections.Counter(wrong).most_common(8)}"
    cut = s.job.validation.dead_letter_payload_chars
    for k, (payload, kind, _code) in sent.items():
        text, d = payload.decode("utf-8"), dead[k]
        assert d["payload_chars"] == len(text) and d["payload_truncated"] == (len(text) > cut), kind
        assert d["payload"] == text[:cut], kind  # whole, or its head when longer than the cut
    assert sum(d["payload_truncated"] for d in dead.values()) == 20  # the 1 MB strings
    print(dict(collections.Counter(c for _, _, c in sent.values())))
    # nothing else was rejected, and the honest readings all reconcile
    assert len(dead) == N_HOSTILE
    assert ledger.readings_accounted() - N_HOSTILE == stats.readings
    # honest readings are still scored: every trained sensor's count windows, each once
    scored = ledger.scored()
    want = {k for k in ledger.windows_expected() if not k.startswith(UNTRAINED)}
    assert want and want <= set(scored), f"{len(want - set(scored))} of {len(want)} windows unscored"
    assert sum(r["is_anomaly"] for r in scored.values()) > 0
