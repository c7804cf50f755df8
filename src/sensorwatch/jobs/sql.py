"""The JVM half of the job, as Flink SQL generated from :class:`~sensorwatch.core.config.Settings`.

Every per-reading step runs here, in the JVM, at SQL speed (measured on two cores: 90-170k rows/s
for TUMBLE against ~1.5k rows/s for a Python keyed window; see docs/BENCHMARKS.md):

1. ``readings``: the Kafka source, ``format = raw``; the rowtime is the reading's own ts (the
   Kafka record time for an invalid reading, so a hostile ts cannot drag the watermark),
   watermarks ``rowtime - out_of_orderness``, idle partitions excluded after ``idle_timeout_ms``.
2. ``parsed``: ``parse_reading`` (Java) validates each payload; invalid ones go to the
   dead-letter topic, reason and whole payload included (Flink counter ``sensorwatch.invalid``).
   With ``kafka.readings_format: device`` the topic holds one message per device and time, and
   ``parse_device_message`` turns each into one row per value (a value rejected alone is one
   dead letter, keyed ``topic/partition/offset#part``; a message rejected whole is one dead
   letter); everything after this step is the same.
3. Valid readings at or behind the current watermark are *late*: they go to the late topic
   (metric ``late``). Everything else is ahead of the watermark and so is certain to reach its
   window, which is why ``readings = aggregated + late + invalid`` holds exactly.
4. ``aggregates``: TUMBLE mean, population stddev and count per sensor, stamped with the
   wall-clock time the window fired (``closed_ts``), published to the aggregates topic
   (training data; Kafka timestamp = window end).
5. ``count_windows``: ``count_window(...) OVER (PARTITION BY sensor ORDER BY window_time ROWS S-1
   PRECEDING)``, a sensor's last S windows as one byte row (a ring in the aggregate's state, in
   place of ``MIN`` and three ``ARRAY_AGG``); the rule is :mod:`sensorwatch.core.windows`' and a
   test holds the two equal.
6. ``batches``: a second TUMBLE of the same size over the count windows, grouped by shard,
   packs every window that closed at the same event time into one byte batch
   (``pack_windows``). It fires on the same watermark as step 4, so batching adds no latency,
   and Python sees one row per shard and window end instead of one per sensor.
7. ``records``: the scorer's rows (no-model records, device models' records) and, from each
   batch's compact ``window_scores`` row and the batch itself, a sensor model's anomaly (and,
   with ``emit_scores``, score) records built by ``explode_records``: no Python row or JSON
   dump per window.
8. The incident stage (:func:`incidents_query`).
"""

from __future__ import annotations

from sensorwatch.core.config import KafkaConfig, Settings
from sensorwatch.core.explain import HINTS
from sensorwatch.core.kafka import java_properties
from sensorwatch.core.outputs import OUTPUTS, WINDOW_SCORES
from sensorwatch.core.windows import FEATURES

FUNCTIONS = {
    "parse_reading": "io.sensorwatch.flink.ParseReading",
    "reading_time": "io.sensorwatch.flink.ReadingTime",
    "parse_device_message": "io.sensorwatch.flink.ParseDeviceMessage",
    "message_time": "io.sensorwatch.flink.DeviceMessageTime",
    "epoch_ms": "io.sensorwatch.flink.EpochMillis",
    "now_ms": "io.sensorwatch.flink.NowMillis",
    "shard_of": "io.sensorwatch.flink.ShardOf",
    "tally": "io.sensorwatch.flink.Tally",
    "count_window": "io.sensorwatch.flink.CountWindow",
    "pack_windows": "io.sensorwatch.flink.PackWindows",
    "device_vector": "io.sensorwatch.flink.DeviceVector",
    "pack_device_windows": "io.sensorwatch.flink.PackDeviceWindows",
    "unpack_scores": "io.sensorwatch.flink.UnpackScores",
    "explode_records": "io.sensorwatch.flink.ExplodeRecords",
    "track_incidents": "io.sensorwatch.flink.TrackIncidents",
}


def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _with(options: dict[str, str]) -> str:
    return "WITH (\n  " + ",\n  ".join(f"{_q(k)} = {_q(v)}" for k, v in options.items()) + "\n)"


def kafka_properties(cfg: KafkaConfig) -> dict[str, str]:
    """The Java client's settings of :class:`KafkaConfig` as the connector's ``properties.*`` options."""
    return {f"properties.{k}": v for k, v in java_properties(cfg).items()}


def _sink_options(s: Settings, topic: str, name: str, value_format: str) -> dict[str, str]:
    job = s.job
    opts = {
        "connector": "kafka",
        "topic": topic,
        **kafka_properties(s.kafka),
        "key.format": "raw",
        "key.fields": "k",
        "value.format": value_format,
        "value.fields-include": "EXCEPT_KEY",
        "sink.delivery-guarantee": job.delivery,
        # records up to the topics' limit (stack.message_max_bytes), not the client's 1 MB default:
        # a record the producer refuses fails the job, and a restart would only refuse it again
        "properties.max.request.size": str(s.stack.message_max_bytes),
    }
    if job.delivery == "exactly-once":
        opts["sink.transactional-id-prefix"] = f"{job.group_id}-{name}"
        # a transaction must outlive the checkpoint interval plus a restart
        opts["properties.transaction.timeout.ms"] = str(max(60_000, 10 * job.checkpoint_interval_ms))
    else:
        opts["properties.linger.ms"] = "5"
    return opts


def _interval(ms: int) -> str:
    """A day-time interval literal: ``INTERVAL 'n' SECOND`` stops at 99 s (SECOND(2))."""
    sec, milli = divmod(int(ms), 1000)
    minutes, sec = divmod(sec, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{sec:02d}.{milli:03d}' DAY TO SECOND(3)"


def _like(pattern: str) -> str:
    """A shell-style pattern (``*``, ``?``) as a SQL LIKE literal with ``\\`` as its escape."""
    out = []
    for ch in pattern:
        out.append({"*": "%", "?": "_", "%": "\\%", "_": "\\_", "\\": "\\\\"}.get(ch, ch))
    return _q("".join(out))


def device_predicate(selector: str | None, column: str = "device") -> str | None:
    """The SQL condition "``column`` matches ``serving.device_models``" (None: no selector)."""
    pats = [p.strip() for p in (selector or "").split(",") if p.strip()]
    if not pats:
        return None
    return "(" + " OR ".join(f"{column} LIKE {_like(p)} ESCAPE '\\'" for p in pats) + ")"


def batch_shards(s: Settings) -> int:
    """How many scoring batches the windows of one event time make (``job.batch_shards``)."""
    return s.job.batch_shards or 2 * s.job.parallelism


def batch_shard(s: Settings, column: str) -> str:
    """The scoring batch of ``column``'s windows. Packed: its model (``shard_of``, the trainer's
    hash), folded onto :func:`batch_shards` batches, so that one model's windows share a batch
    and its Predict is one call; per-sensor: the hash of the id."""
    groups = s.serving.packed_groups
    shards = batch_shards(s)
    if s.serving.layout != "packed":
        return f"shard_of({column}, {shards})"
    expr = f"shard_of({column}, {groups})"
    return expr if shards >= groups else f"MOD({expr}, {shards})"


def _device_views(s: Settings, predicate: str) -> list[str]:
    """Steps 5'-6': the device path (see the module docstring)."""
    job = s.job
    w_ms = int(job.window_s * 1000)
    slide = "" if job.slide == 1 else f" AND MOD(window_end_ms / {w_ms}, {job.slide}) = 0"
    return [
        f"""CREATE TEMPORARY VIEW device_vectors AS
SELECT device, window_start, window_end, window_time, MAX(closed_ts) AS closed_ts,
  device_vector(tag, mean, stddev, cnt) AS vec
FROM TABLE(TUMBLE(
  (SELECT device, tag, mean, stddev, cnt, closed_ts, window_time AS rt FROM aggregates WHERE {predicate}),
  DESCRIPTOR(rt), {_interval(w_ms)}))
GROUP BY device, window_start, window_end, window_time""",
        f"""CREATE TEMPORARY VIEW device_windows AS
SELECT device, window_time, first_start, window_end_ms, closed_ts, vecs
FROM (
  SELECT device, window_time, epoch_ms(window_end) AS window_end_ms, closed_ts,
    MIN(epoch_ms(window_start)) OVER w AS first_start,
    ARRAY_AGG(vec) OVER w AS vecs,
    COUNT(*) OVER w AS n
  FROM device_vectors
  WINDOW w AS (PARTITION BY device ORDER BY window_time ROWS BETWEEN {job.seq_len - 1} PRECEDING AND CURRENT ROW)
)
WHERE n = {job.seq_len}{slide}""",
        f"""CREATE TEMPORARY VIEW device_batches AS
SELECT shard, epoch_ms(window_end) AS batch_end,
  pack_device_windows(device, first_start, window_end_ms, closed_ts, vecs) AS batch
FROM TABLE(TUMBLE(
  (SELECT {batch_shard(s, "device")} AS shard, * FROM device_windows),
  DESCRIPTOR(window_time), {_interval(w_ms)}))
GROUP BY shard, window_start, window_end""",
    ]


def incidents_query(s: Settings, source: str = "window_scores") -> str:
    """7. The incident stage: every scored window (``source``: the scorer's compact rows,
    unpacked in the JVM) through each sensor's calibration and incident state
    (``TrackIncidents``, keyed by sensor, checkpointed); ``(k, v)`` rows for the incidents topic."""
    job, inc = s.job, s.job.incidents
    w_ms = int(job.window_s * 1000)
    return f"""SELECT k, v FROM track_incidents(
  input => TABLE {source} PARTITION BY sensor,
  horizon => {inc.horizon_windows}, short_windows => {inc.short_windows}, learning => {inc.learning_windows},
  clip_sd => CAST({inc.clip_sd!r} AS DOUBLE), alert_tail => CAST({inc.alert_tail!r} AS DOUBLE), close_after => {inc.close_after_windows},
  silence_ms => CAST({inc.silence_windows * w_ms} AS BIGINT), window_ms => CAST({w_ms} AS BIGINT),
  seq_len => {job.seq_len}, features => {_q(",".join(FEATURES))}, hints => {_q(",".join(HINTS))},
  uid => 'incidents'
)"""


def statements(s: Settings) -> dict[str, list[str]]:
    """``{"ddl": [...], "views": [...], "inserts": [...]}``: the job's SQL, in order.

    The Python half reads the view ``batches`` and writes the view ``scored`` (kind, k, v,
    packed, and the batch it read); the views and inserts over ``scored`` are in
    ``scored_views`` and ``scored_inserts``.
    """
    job, t = s.job, s.kafka.topics
    v = job.validation
    w_ms = int(job.window_s * 1000)
    limits = (
        f"CAST({v.max_past_ms} AS BIGINT), CAST({v.max_future_ms} AS BIGINT), "
        f"{v.max_payload_bytes}, CAST({v.max_abs_value!r} AS DOUBLE)"
    )
    device_messages = s.kafka.readings_format == "device"
    start_mode = {"group-offsets": "group-offsets", "earliest": "earliest-offset", "latest": "latest-offset"}[
        job.start_from
    ]
    source = {
        "connector": "kafka",
        "topic": t.readings,
        **kafka_properties(s.kafka),
        "properties.group.id": job.group_id,
        "properties.auto.offset.reset": "earliest",
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": start_mode,
        "format": "raw",
    }
    ddl = [
        *(f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {n} AS {_q(c)} LANGUAGE JAVA" for n, c in FUNCTIONS.items()),
        f"""CREATE TEMPORARY TABLE readings (
  payload STRING,
  kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  rt AS {"message_time" if device_messages else "reading_time"}(payload, kafka_ts, {limits}),
  WATERMARK FOR rt AS rt - {_interval(job.out_of_orderness_ms)}
) {_with(source)}""",
        f"""CREATE TEMPORARY TABLE dead_letters_out (
  k STRING, reason STRING, payload STRING, payload_truncated BOOLEAN, payload_chars INT, topic STRING,
  `partition` INT, `offset` BIGINT, kafka_ts BIGINT
) {_with(_sink_options(s, t.dead_letters, "dead-letters", "json"))}""",
        f"""CREATE TEMPORARY TABLE late_out (
  k STRING, sensor STRING, ts BIGINT, `value` DOUBLE, `watermark` BIGINT, payload STRING, topic STRING,
  `partition` INT, `offset` BIGINT, kafka_ts BIGINT
) {_with(_sink_options(s, t.late, "late", "json"))}""",
        f"""CREATE TEMPORARY TABLE aggregates_out (
  k STRING, sensor STRING, device STRING, tag STRING, window_start BIGINT, window_end BIGINT,
  mean DOUBLE, stddev DOUBLE, `count` BIGINT, closed_ts BIGINT,
  kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
) {_with(_sink_options(s, t.aggregates, "aggregates", "json"))}""",
        *(
            f"""CREATE TEMPORARY TABLE {o.topic_field}_out (k STRING, v STRING) {
                _with(_sink_options(s, o.topic(t), o.topic_field, "raw"))
            }"""
            for o in OUTPUTS
            if o.enabled(s)
        ),
    ]
    if job.incidents.enabled:
        ddl.append(
            f"CREATE TEMPORARY TABLE incidents_out (k STRING, v STRING) {_with(_sink_options(s, t.incidents, 'incidents', 'raw'))}"
        )
    src = _q(t.readings)
    cut = v.dead_letter_payload_chars
    devices = device_predicate(s.serving.device_models)
    # a record's key: its place in the topic, and in a device message the value's place in it
    key = f"CONCAT({src}, '/', CAST(kafka_partition AS STRING), '/', CAST(kafka_offset AS STRING)"
    key += ", COALESCE(CONCAT('#', CAST(r.part AS STRING)), ''))" if device_messages else ")"
    parse = (
        f"""SELECT T.r, payload, kafka_ts, kafka_partition, kafka_offset, rt
FROM readings, LATERAL TABLE(parse_device_message(payload, kafka_ts, {limits})) AS T(r)"""
        if device_messages
        else f"""SELECT parse_reading(payload, kafka_ts, {limits}) AS r, payload, kafka_ts, kafka_partition, kafka_offset, rt
FROM readings"""
    )
    views = [
        f"""CREATE TEMPORARY VIEW parsed AS
{parse}""",
        """CREATE TEMPORARY VIEW on_time AS
SELECT tally('on_time', r.device) AS device, r.tag AS tag, r.val AS val, rt
FROM parsed
WHERE r.reason IS NULL AND (CURRENT_WATERMARK(rt) IS NULL OR rt > CURRENT_WATERMARK(rt))""",
        f"""CREATE TEMPORARY VIEW aggregates AS
SELECT sensor, device, tag, window_start, window_end, window_time,
  s1 / cnt AS mean, SQRT(GREATEST(s2 / cnt - (s1 / cnt) * (s1 / cnt), 0.0)) AS stddev, cnt, now_ms() AS closed_ts
FROM (
  SELECT CONCAT(device, '/', tag) AS sensor, device, tag, window_start, window_end, window_time,
    SUM(val) AS s1, SUM(val * val) AS s2, COUNT(*) AS cnt
  FROM TABLE(TUMBLE(TABLE on_time, DESCRIPTOR(rt), {_interval(w_ms)}))
  GROUP BY device, tag, window_start, window_end, window_time
)""",
        f"""CREATE TEMPORARY VIEW count_windows AS
SELECT sensor, window_time, window_end_ms, closed_ts, win
FROM (
  SELECT sensor, window_time, epoch_ms(window_end) AS window_end_ms, closed_ts,
    count_window(epoch_ms(window_start), mean, stddev, cnt, {job.seq_len}) OVER w AS win
  FROM aggregates{"" if devices is None else f" WHERE NOT {devices}"}
  WINDOW w AS (PARTITION BY sensor ORDER BY window_time ROWS BETWEEN {job.seq_len - 1} PRECEDING AND CURRENT ROW)
)
WHERE win IS NOT NULL{"" if job.slide == 1 else f" AND MOD(window_end_ms / {w_ms}, {job.slide}) = 0"}""",
        f"""CREATE TEMPORARY VIEW {"batches" if devices is None else "sensor_batches"} AS
SELECT shard, epoch_ms(window_end) AS batch_end,
  pack_windows(sensor, window_end_ms, closed_ts, win) AS batch
FROM TABLE(TUMBLE(
  (SELECT {batch_shard(s, "sensor")} AS shard, * FROM count_windows),
  DESCRIPTOR(window_time), {_interval(w_ms)}))
GROUP BY shard, window_start, window_end""",
    ]
    if devices is not None:
        views += _device_views(s, devices)
        views.append("""CREATE TEMPORARY VIEW batches AS
SELECT shard, batch_end, batch FROM sensor_batches
UNION ALL
SELECT shard, batch_end, batch FROM device_batches""")
    inserts = [
        f"""INSERT INTO dead_letters_out
SELECT {key},
  tally('invalid', r.reason),
  CASE WHEN CHAR_LENGTH(payload) > {cut} THEN SUBSTRING(payload, 1, {cut}) ELSE payload END,
  COALESCE(CHAR_LENGTH(payload) > {cut}, FALSE), CHAR_LENGTH(payload),
  {src}, kafka_partition, kafka_offset, epoch_ms(kafka_ts)
FROM parsed WHERE r.reason IS NOT NULL""",
        f"""INSERT INTO late_out
SELECT {key},
  tally('late', CONCAT(r.device, '/', r.tag)), r.ts, r.val, epoch_ms(CURRENT_WATERMARK(rt)), payload, {src},
  kafka_partition, kafka_offset, epoch_ms(kafka_ts)
FROM parsed
WHERE r.reason IS NULL AND CURRENT_WATERMARK(rt) IS NOT NULL AND rt <= CURRENT_WATERMARK(rt)""",
        """INSERT INTO aggregates_out
SELECT CONCAT(sensor, '@', CAST(epoch_ms(window_end) AS STRING)), sensor, device, tag,
  epoch_ms(window_start), epoch_ms(window_end), mean, stddev, cnt, closed_ts, window_end
FROM aggregates""",
    ]
    # 7. The records: Python's rows (no-model records, device models' records) and the rows the
    # JVM builds from each batch's compact scores (a sensor model's anomaly and score records)
    emit = "TRUE" if job.emit_scores else "FALSE"
    scored_views = [
        f"""CREATE TEMPORARY VIEW records AS
SELECT kind, k, v FROM scored WHERE kind <> {_q(WINDOW_SCORES)}
UNION ALL
SELECT r.kind, r.k, r.v FROM scored, LATERAL TABLE(explode_records(batch, packed, {emit})) AS r
WHERE scored.kind = {_q(WINDOW_SCORES)}"""
    ]
    scored_inserts = [
        f"INSERT INTO {o.topic_field}_out SELECT k, v FROM records WHERE kind = {_q(o.kind)}"
        for o in OUTPUTS
        if o.enabled(s)
    ]
    if job.incidents.enabled:
        scored_views.append(f"""CREATE TEMPORARY VIEW window_scores AS
SELECT u.* FROM scored, LATERAL TABLE(unpack_scores(packed)) AS u
WHERE kind = {_q(WINDOW_SCORES)}""")
        scored_inserts.append(f"INSERT INTO incidents_out\n{incidents_query(s)}")
    return {
        "ddl": ddl,
        "views": views,
        "inserts": inserts,
        "scored_views": scored_views,
        "scored_inserts": scored_inserts,
    }
