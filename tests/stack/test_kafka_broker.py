"""The broker's storage is formatted with a cluster id StorageTool can always parse."""

from __future__ import annotations

import base64

from sensorwatch.stack.kafka_broker import new_cluster_id


def test_cluster_ids_never_start_with_a_dash_and_are_16_bytes():
    ids = [new_cluster_id() for _ in range(20_000)]  # one raw draw in 64 starts with '-'
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
    assert sum(i.startswith("_") for i in ids) > 0  # the other URL-safe characters still occur
