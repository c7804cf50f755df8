package io.sensorwatch.flink;

import java.time.Instant;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code epoch_ms(ts)}: a {@code TIMESTAMP_LTZ} as epoch milliseconds.
 *
 * <p>Every time in sensorwatch's records is epoch ms; Flink's own CAST to BIGINT yields seconds.
 */
public class EpochMillis extends ScalarFunction {

    public Long eval(@DataTypeHint("TIMESTAMP_LTZ(3)") Instant ts) {
        return ts == null ? null : ts.toEpochMilli();
    }
}
