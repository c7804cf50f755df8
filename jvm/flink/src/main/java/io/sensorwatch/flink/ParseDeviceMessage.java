package io.sensorwatch.flink;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * SQL: {@code LATERAL TABLE(parse_device_message(payload, kafka_ts, max_past_ms, max_future_ms,
 * max_bytes, max_abs)) AS T(r)}: one row per value of a device message, each
 * {@code r = ROW<device, tag, ts, val, reason, part>} like {@link ParseReading}'s plus
 * {@code part}, the value's place in the message (0, 1, ...), which keys its late record or dead
 * letter apart from its siblings'. A value rejected alone has its reason and its part; a message
 * rejected whole is one row with its reason and no part.
 *
 * <p>The view that calls it must be one planned table read by every sink, not a SQL view
 * expanded per reader (see {@code sensorwatch.jobs.pipeline._create_view}).
 */
@FunctionHint(
        output = @DataTypeHint(
                "ROW<r ROW<device STRING, tag STRING, ts BIGINT, val DOUBLE, reason STRING, part INT>>"))
public class ParseDeviceMessage extends TableFunction<Row> {

    public void eval(
            String payload, Long kafkaTs, Long maxPastMs, Long maxFutureMs, Integer maxBytes, Double maxAbs) {
        DeviceMessageParser.Result m =
                DeviceMessageParser.parseMemo(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbs);
        if (m.reason != null) {
            collect(Row.of(Row.of(m.device, null, null, null, m.reason, null)));
            return;
        }
        for (int i = 0; i < m.tags.size(); i++) {
            collect(Row.of(Row.of(m.device, m.tags.get(i), m.ts, m.values.get(i), m.valueReasons.get(i), i)));
        }
    }

    public void eval(
            String payload, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant kafkaTs, Long maxPastMs, Long maxFutureMs,
            Integer maxBytes, Double maxAbs) {
        eval(payload, kafkaTs == null ? null : kafkaTs.toEpochMilli(), maxPastMs, maxFutureMs, maxBytes, maxAbs);
    }
}
