package io.sensorwatch.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * SQL aggregate: {@code pack_windows(sensor, end_ms, closed_ms, window)}, {@code window} as
 * {@link CountWindow} packs it, packs the count windows of many sensors into one little-endian
 * byte batch for Python.
 *
 * <p>Python rows cost about 50 µs each in PyFlink; a batch holding every window of a shard that
 * closed at the same event time costs one row. The layout ({@code udfs/batch.py} decodes it):
 *
 * <pre>
 *   int32 n, int32 S
 *   int64 start[n], int64 end[n], int64 closed[n]
 *   float64 values[n*S], float64 stddev[n*S], float64 count[n*S]
 *   UTF-8 sensor ids joined by '\n'
 * </pre>
 */
@FunctionHint(
        input = {@DataTypeHint("STRING"), @DataTypeHint("BIGINT"), @DataTypeHint("BIGINT"), @DataTypeHint("BYTES")},
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = PackWindows.Acc.class),
        output = @DataTypeHint("BYTES"))
public class PackWindows extends AggregateFunction<byte[], PackWindows.Acc> {

    /** The windows gathered so far, column by column. */
    public static class Acc {
        public int seqLen = -1;
        public List<String> sensors = new ArrayList<>();
        public List<long[]> times = new ArrayList<>();
        public List<double[]> features = new ArrayList<>();
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    /** One window as {@link CountWindow} packs it: {@code int64 first_start, float64 mean[S], stddev[S], count[S]}. */
    public void accumulate(Acc acc, String sensor, Long endMs, Long closedMs, byte[] window) {
        if (window.length < 8 || (window.length - 8) % 24 != 0) {
            throw new IllegalArgumentException("a count window of " + window.length + " bytes for " + sensor);
        }
        int s = (window.length - 8) / 24;
        if (acc.seqLen < 0) {
            acc.seqLen = s;
        } else if (acc.seqLen != s) {
            throw new IllegalArgumentException("windows of length " + acc.seqLen + " and " + s + " in one batch");
        }
        ByteBuffer in = ByteBuffer.wrap(window).order(ByteOrder.LITTLE_ENDIAN);
        long startMs = in.getLong();
        double[] f = new double[3 * s];
        in.asDoubleBuffer().get(f);
        acc.sensors.add(sensor);
        acc.times.add(new long[] {startMs, endMs, closedMs});
        acc.features.add(f);
    }

    @Override
    public byte[] getValue(Acc acc) {
        int n = acc.sensors.size();
        int s = Math.max(acc.seqLen, 0);
        byte[] names = String.join("\n", acc.sensors).getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(8 + 24 * n + 24 * n * s + names.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putInt(n).putInt(s);
        for (int k = 0; k < 3; k++) {
            for (long[] t : acc.times) {
                buf.putLong(t[k]);
            }
        }
        for (int k = 0; k < 3; k++) {
            for (double[] f : acc.features) {
                for (int i = 0; i < s; i++) {
                    buf.putDouble(f[k * s + i]);
                }
            }
        }
        buf.put(names);
        return buf.array();
    }
}
