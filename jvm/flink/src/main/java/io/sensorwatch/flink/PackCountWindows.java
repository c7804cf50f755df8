package io.sensorwatch.flink;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * SQL aggregate: {@code pack_count_windows(sensor, start_ms, end_ms, closed_ms, features)} packs
 * the count windows {@link CountWindows} emits (features: S means, S standard deviations, S
 * counts as little-endian doubles) of many sensors into one little-endian byte batch for Python.
 *
 * <p>Python rows cost about 50 µs each in PyFlink; a batch holding every window of a shard that
 * closed at the same event time costs one row. The layout ({@code udfs/batch.py} decodes it;
 * its columns are the windows' slices, copied whole):
 *
 * <pre>
 *   int32 n, int32 S
 *   int64 start[n], int64 end[n], int64 closed[n]
 *   float64 values[n*S], float64 stddev[n*S], float64 count[n*S]
 *   UTF-8 sensor ids joined by '\n'
 * </pre>
 */
@FunctionHint(
        input = {
            @DataTypeHint("STRING"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("BYTES")
        },
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = PackCountWindows.Acc.class),
        output = @DataTypeHint("BYTES"))
public class PackCountWindows extends AggregateFunction<byte[], PackCountWindows.Acc> {

    /** The windows gathered so far: their times, features and names, each in one growing buffer. */
    public static class Acc {
        public int n;
        public int featureBytes = -1;
        public ByteArrayOutputStream times = new ByteArrayOutputStream();
        public ByteArrayOutputStream features = new ByteArrayOutputStream();
        public ByteArrayOutputStream names = new ByteArrayOutputStream();
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, String sensor, Long startMs, Long endMs, Long closedMs, byte[] features) {
        if (features.length % 24 != 0) {
            throw new IllegalArgumentException("features of " + sensor + " are not 3 x S doubles");
        }
        if (acc.featureBytes < 0) {
            acc.featureBytes = features.length;
        } else if (acc.featureBytes != features.length) {
            throw new IllegalArgumentException("windows of length " + acc.featureBytes / 24 + " and "
                    + features.length / 24 + " in one batch");
        }
        ByteBuffer t = ByteBuffer.allocate(24).order(ByteOrder.LITTLE_ENDIAN);
        acc.times.writeBytes(t.putLong(startMs).putLong(endMs).putLong(closedMs).array());
        acc.features.writeBytes(features);
        if (acc.n > 0) {
            acc.names.write('\n');
        }
        acc.names.writeBytes(sensor.getBytes(StandardCharsets.UTF_8));
        acc.n += 1;
    }

    @Override
    public byte[] getValue(Acc acc) {
        int n = acc.n;
        int fb = Math.max(acc.featureBytes, 0);
        int s = fb / 24;
        byte[] times = acc.times.toByteArray();
        byte[] feats = acc.features.toByteArray();
        byte[] names = acc.names.toByteArray();
        ByteBuffer buf = ByteBuffer.allocate(8 + 24 * n + fb * n + names.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putInt(n).putInt(s);
        for (int k = 0; k < 3; k++) { // start[n], end[n], closed[n]
            for (int i = 0; i < n; i++) {
                buf.put(times, 24 * i + 8 * k, 8);
            }
        }
        for (int k = 0; k < 3; k++) { // values[n*S], stddev[n*S], count[n*S]
            for (int i = 0; i < n; i++) {
                buf.put(feats, fb * i + 8 * s * k, 8 * s);
            }
        }
        buf.put(names);
        return buf.array();
    }
}
