package io.sensorwatch.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code now_ms()}: wall-clock epoch ms, evaluated for every row.
 *
 * <p>Stamped on each tumbling aggregate when its window fires, so the time from window close to
 * the anomaly record is measurable record by record. Non-deterministic, so the planner never
 * folds it into a constant.
 */
public class NowMillis extends ScalarFunction {

    public long eval() {
        return System.currentTimeMillis();
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}
