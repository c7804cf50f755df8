package io.sensorwatch.flink;

import java.util.TreeMap;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * SQL aggregate: {@code device_vector(tag, mean, stddev, count)} over one device's tumbling
 * aggregates of one window: the device model's step, every tag that had a reading, in tag order.
 *
 * <p>A device model sees its tags side by side ({@code sensorwatch.core.windows.DeviceSeries} is
 * the rule in Python). Text, {@code tag=mean,stddev,count;...} with Java's shortest exact
 * double form ({@link PackDeviceWindows} reads it): the count window's {@code ARRAY_AGG ... OVER
 * ROWS} retracts its oldest element by equality, which holds for strings and not for byte arrays.
 */
@FunctionHint(
        input = {@DataTypeHint("STRING"), @DataTypeHint("DOUBLE"), @DataTypeHint("DOUBLE"), @DataTypeHint("BIGINT")},
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = DeviceVector.Acc.class),
        output = @DataTypeHint("STRING"))
public class DeviceVector extends AggregateFunction<String, DeviceVector.Acc> {

    /** Tag -> (mean, stddev, count), sorted by tag. */
    public static class Acc {
        public TreeMap<String, double[]> tags = new TreeMap<>();
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, String tag, Double mean, Double stddev, Long count) {
        acc.tags.put(tag, new double[] {mean, stddev, count});
    }

    @Override
    public String getValue(Acc acc) {
        return encode(acc.tags);
    }

    static String encode(TreeMap<String, double[]> tags) {
        StringBuilder b = new StringBuilder();
        for (var e : tags.entrySet()) {
            if (b.length() > 0) {
                b.append(';');
            }
            double[] f = e.getValue();
            b.append(e.getKey()).append('=').append(f[0]).append(',').append(f[1]).append(',').append(f[2]);
        }
        return b.toString();
    }

    /** The inverse of {@link #encode}: tag -> features, in tag order. */
    static TreeMap<String, double[]> decode(String vec) {
        TreeMap<String, double[]> out = new TreeMap<>();
        if (vec.isEmpty()) {
            return out;
        }
        for (String part : vec.split(";")) {
            int eq = part.indexOf('=');
            String[] f = part.substring(eq + 1).split(",");
            if (eq < 1 || f.length != 3) {
                throw new IllegalArgumentException("device vector part " + part + " is not tag=mean,stddev,count");
            }
            out.put(part.substring(0, eq),
                    new double[] {Double.parseDouble(f[0]), Double.parseDouble(f[1]), Double.parseDouble(f[2])});
        }
        return out;
    }
}
