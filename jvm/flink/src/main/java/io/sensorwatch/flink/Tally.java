package io.sensorwatch.flink;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code tally(name, value)} returns value and adds one to the Flink counter
 * {@code sensorwatch.<name>} of the operator that evaluates it.
 *
 * <p>Placed in the select list of one branch of the job (late readings, say), it counts exactly
 * the rows that branch emits. Non-deterministic so the planner neither folds nor duplicates it.
 */
public class Tally extends ScalarFunction {

    private transient MetricGroup group;
    private transient Map<String, Counter> counters;

    @Override
    public void open(FunctionContext context) {
        group = context.getMetricGroup().addGroup("sensorwatch");
        counters = new HashMap<>();
    }

    public String eval(String name, String value) {
        if (counters != null) {
            counters.computeIfAbsent(name, group::counter).inc();
        }
        return value;
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}
