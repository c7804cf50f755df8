package io.sensorwatch.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * SQL: {@code parse_reading(payload, kafka_ts_ms, max_past_ms, max_future_ms, max_bytes, max_abs)}
 * returns {@code ROW<device, tag, ts, val, reason>}; reason is null for a valid reading.
 */
public class ParseReading extends ScalarFunction {

    public @DataTypeHint("ROW<device STRING, tag STRING, ts BIGINT, val DOUBLE, reason STRING>") Row eval(
            String payload, Long kafkaTs, Long maxPastMs, Long maxFutureMs, Integer maxBytes, Double maxAbs) {
        ReadingParser.Result r =
                ReadingParser.parse(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return Row.of(r.device, r.tag, r.ts, r.value, r.reason);
    }
}
