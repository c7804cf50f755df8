package io.sensorwatch.flink;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code reading_time(payload, kafka_ts, ...)}: the event time watermarks follow, as a
 * {@code TIMESTAMP_LTZ(3)} for the Kafka source's rowtime ({@code kafka_ts} as its metadata), or
 * as epoch ms when {@code kafka_ts} is epoch ms.
 *
 * <p>A valid reading's own ts; for an invalid one the Kafka record time, so that a hostile
 * timestamp (year 3000, say) can never drag the watermark forward and turn every honest
 * reading late. Invalid readings leave for the dead-letter topic before any window.
 */
public class ReadingTime extends ScalarFunction {

    public Long eval(
            String payload, Long kafkaTs, Long maxPastMs, Long maxFutureMs, Integer maxBytes, Double maxAbs) {
        ReadingParser.Result r =
                ReadingParser.parseMemo(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return eventTime(r.reason == null, r.ts, kafkaTs);
    }

    /** The rule: a readable record's own ts; else its Kafka record time (0 when unknown). */
    static Long eventTime(boolean readable, Long ts, Long kafkaTs) {
        return readable ? ts : (kafkaTs == null ? Long.valueOf(0L) : kafkaTs);
    }

    public @DataTypeHint("TIMESTAMP_LTZ(3)") Instant eval(
            String payload, @DataTypeHint("TIMESTAMP_LTZ(3)") Instant kafkaTs, Long maxPastMs, Long maxFutureMs,
            Integer maxBytes, Double maxAbs) {
        Long ms = eval(payload, kafkaTs == null ? null : kafkaTs.toEpochMilli(), maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return Instant.ofEpochMilli(ms);
    }
}
