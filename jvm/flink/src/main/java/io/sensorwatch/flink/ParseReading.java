package io.sensorwatch.flink;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * SQL: {@code parse_reading(payload, kafka_ts, max_past_ms, max_future_ms, max_bytes, max_abs)}
 * returns {@code ROW<device, tag, ts, val, reason>}; reason is null for a valid reading.
 * {@code kafka_ts} is epoch ms (BIGINT) or the Kafka source's {@code TIMESTAMP_LTZ(3)} metadata.
 *
 * <p>Declared non-deterministic so that the planner keeps one call per row and reads the fields
 * of its result, instead of inlining {@code parse_reading(...).device}, {@code .tag}, ... as one
 * parse per field. The job's counters are {@code tally} calls on each branch's output.
 */
public class ParseReading extends ScalarFunction {

    public @DataTypeHint("ROW<device STRING, tag STRING, ts BIGINT, val DOUBLE, reason STRING>") Row eval(
            String payload, Long kafkaTs, Long maxPastMs, Long maxFutureMs, Integer maxBytes, Double maxAbs) {
        ReadingParser.Result r =
                ReadingParser.parseMemo(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return Row.of(r.device, r.tag, r.ts, r.value, r.reason);
    }

    public @DataTypeHint("ROW<device STRING, tag STRING, ts BIGINT, val DOUBLE, reason STRING>") Row eval(
            String payload, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant kafkaTs, Long maxPastMs, Long maxFutureMs,
            Integer maxBytes, Double maxAbs) {
        return eval(payload, kafkaTs == null ? null : kafkaTs.toEpochMilli(), maxPastMs, maxFutureMs, maxBytes, maxAbs);
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}
