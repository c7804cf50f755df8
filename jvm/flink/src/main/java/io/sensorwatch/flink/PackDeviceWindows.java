package io.sensorwatch.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.TreeSet;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * SQL aggregate: {@code pack_device_windows(device, start_ms, end_ms, closed_ms, vectors)} packs
 * count windows of S device vectors ({@link DeviceVector}) of many devices into one byte batch for
 * Python, as {@link PackWindows} does for sensors.
 *
 * <p>A window's columns are the union of the tags in its S vectors, sorted; a tag without a
 * reading in a step is NaN there (the model imputes it and masks it out). Windows with fewer
 * tags than the batch's widest are padded with empty tag names. Layout, little-endian
 * ({@code udfs/batch.py} decodes it):
 *
 * <pre>
 *   int32 -2 (a device batch), int32 n, int32 S, int32 C
 *   int64 start[n], int64 end[n], int64 closed[n]
 *   float64 values[n*S*C], float64 stddev[n*S*C], float64 count[n*S*C]
 *   UTF-8: n device names, then n*C tag names, joined by '\n'
 * </pre>
 */
@FunctionHint(
        input = {
            @DataTypeHint("STRING"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("ARRAY<STRING>")
        },
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = PackDeviceWindows.Acc.class),
        output = @DataTypeHint("BYTES"))
public class PackDeviceWindows extends AggregateFunction<byte[], PackDeviceWindows.Acc> {

    /** Marks a device batch (a sensor batch starts with its window count, never negative). */
    public static final int MAGIC = -2;

    /** One count window: its device, times, tags and S steps of tag -> features. */
    public static class Window {
        public String device;
        public long[] times;
        public List<String> tags;
        public List<TreeMap<String, double[]>> steps;
    }

    /** The windows gathered so far. */
    public static class Acc {
        public int seqLen = -1;
        public int width = 0;
        public List<Window> windows = new ArrayList<>();
    }

    @Override
    public Acc createAccumulator() {
        return new Acc();
    }

    public void accumulate(Acc acc, String device, Long startMs, Long endMs, Long closedMs, String[] vectors) {
        int s = vectors.length;
        if (acc.seqLen < 0) {
            acc.seqLen = s;
        } else if (acc.seqLen != s) {
            throw new IllegalArgumentException("device windows of length " + acc.seqLen + " and " + s + " in one batch");
        }
        Window w = new Window();
        w.device = device;
        w.times = new long[] {startMs, endMs, closedMs};
        w.steps = new ArrayList<>(s);
        TreeSet<String> tags = new TreeSet<>();
        for (String v : vectors) {
            TreeMap<String, double[]> step = DeviceVector.decode(v);
            tags.addAll(step.keySet());
            w.steps.add(step);
        }
        w.tags = new ArrayList<>(tags);
        acc.width = Math.max(acc.width, w.tags.size());
        acc.windows.add(w);
    }

    @Override
    public byte[] getValue(Acc acc) {
        int n = acc.windows.size();
        int s = Math.max(acc.seqLen, 0);
        int c = acc.width;
        List<String> names = new ArrayList<>(n + n * c);
        for (Window w : acc.windows) {
            names.add(w.device);
        }
        for (Window w : acc.windows) {
            for (int j = 0; j < c; j++) {
                names.add(j < w.tags.size() ? w.tags.get(j) : "");
            }
        }
        byte[] text = String.join("\n", names).getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocate(16 + 24 * n + 24 * n * s * c + text.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.putInt(MAGIC).putInt(n).putInt(s).putInt(c);
        for (int k = 0; k < 3; k++) {
            for (Window w : acc.windows) {
                buf.putLong(w.times[k]);
            }
        }
        for (int k = 0; k < 3; k++) {
            for (Window w : acc.windows) {
                for (TreeMap<String, double[]> step : w.steps) {
                    for (int j = 0; j < c; j++) {
                        double[] f = j < w.tags.size() ? step.get(w.tags.get(j)) : null;
                        buf.putDouble(f == null ? Double.NaN : f[k]);
                    }
                }
            }
        }
        buf.put(text);
        return buf.array();
    }
}
