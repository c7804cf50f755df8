package io.sensorwatch.flink;

import java.util.Objects;

/**
 * The last parse of one thread, for a parser that is a pure function of its arguments.
 *
 * <p>Why: the job's plan evaluates the parse in several chained operators of one task thread for
 * the same record (the watermark's event time, then the valid, late and dead-letter branches),
 * one right after the other, so the second and later calls for a record return the first call's
 * result: one JSON parse per record instead of several. The result is shared; callers must not
 * modify it. Keep one per thread ({@link ThreadLocal}).
 */
final class ParseMemo<R> {

    /** A parser: payload, Kafka record time and the contract's limits to its result. */
    interface Parser<R> {
        R parse(String payload, Long kafkaTs, long maxPastMs, long maxFutureMs, int maxBytes, double maxAbsValue);
    }

    private final Parser<R> parser;
    private String payload;
    private Long kafkaTs;
    private long maxPastMs;
    private long maxFutureMs;
    private int maxBytes;
    private double maxAbsValue;
    private R result;

    ParseMemo(Parser<R> parser) {
        this.parser = parser;
    }

    R parse(String payload, Long kafkaTs, long maxPastMs, long maxFutureMs, int maxBytes, double maxAbsValue) {
        if (payload == null) {
            return parser.parse(null, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbsValue);
        }
        if (result != null
                && Objects.equals(kafkaTs, this.kafkaTs)
                && maxPastMs == this.maxPastMs
                && maxFutureMs == this.maxFutureMs
                && maxBytes == this.maxBytes
                && maxAbsValue == this.maxAbsValue
                && payload.equals(this.payload)) {
            return result;
        }
        R r = parser.parse(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbsValue);
        this.payload = payload;
        this.kafkaTs = kafkaTs;
        this.maxPastMs = maxPastMs;
        this.maxFutureMs = maxFutureMs;
        this.maxBytes = maxBytes;
        this.maxAbsValue = maxAbsValue;
        this.result = r;
        return r;
    }
}
