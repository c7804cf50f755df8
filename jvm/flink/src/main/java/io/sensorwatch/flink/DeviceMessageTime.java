package io.sensorwatch.flink;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code message_time(payload, kafka_ts, ...)}: {@link ReadingTime} for device messages. A
 * readable message's own ts (its values share it, rejected ones included); for a message
 * rejected whole the Kafka record time, so a hostile ts cannot drag the watermark.
 */
public class DeviceMessageTime extends ScalarFunction {

    public Long eval(
            String payload, Long kafkaTs, Long maxPastMs, Long maxFutureMs, Integer maxBytes, Double maxAbs) {
        DeviceMessageParser.Result m =
                DeviceMessageParser.parseMemo(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return ReadingTime.eventTime(m.reason == null, m.ts, kafkaTs);
    }

    public @DataTypeHint("TIMESTAMP_LTZ(3)") Instant eval(
            String payload, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant kafkaTs, Long maxPastMs, Long maxFutureMs,
            Integer maxBytes, Double maxAbs) {
        Long ms = eval(payload, kafkaTs == null ? null : kafkaTs.toEpochMilli(), maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return Instant.ofEpochMilli(ms);
    }
}
