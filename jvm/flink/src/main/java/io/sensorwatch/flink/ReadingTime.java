package io.sensorwatch.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code reading_time(payload, kafka_ts_ms, ...)}: the event time watermarks follow.
 *
 * <p>A valid reading's own ts; for an invalid one the Kafka record time, so that a hostile
 * timestamp (year 3000, say) can never drag the watermark forward and turn every honest
 * reading late. Invalid readings leave for the dead-letter topic before any window.
 */
public class ReadingTime extends ScalarFunction {

    public Long eval(
            String payload, Long kafkaTs, Long maxPastMs, Long maxFutureMs, Integer maxBytes, Double maxAbs) {
        ReadingParser.Result r =
                ReadingParser.parse(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbs);
        return r.reason == null ? r.ts : (kafkaTs == null ? Long.valueOf(0L) : kafkaTs);
    }
}
