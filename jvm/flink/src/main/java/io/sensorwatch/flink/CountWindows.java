package io.sensorwatch.flink;

import static org.apache.flink.table.annotation.ArgumentTrait.SET_SEMANTIC_TABLE;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * Process table function: each sensor's count windows, from its tumbling aggregates, in one
 * keyed ring of the last S means, standard deviations and counts.
 *
 * <pre>
 * SELECT * FROM count_windows(
 *   input => TABLE aggregates PARTITION BY sensor, on_time => DESCRIPTOR(window_time),
 *   seq_len => 16, slide => 1, window_ms => 5000, uid => 'count-windows')
 * </pre>
 *
 * <p>The rule is {@code sensorwatch.core.windows}' (what training uses): a window is the last S
 * aggregates of the sensor, gaps in time included, and one is emitted for every aggregate
 * from the S-th on whose window end is a multiple of {@code slide} windows. It replaces
 * {@code ARRAY_AGG ... OVER (ROWS S-1 PRECEDING)}, which kept every row in state, accumulated
 * three arrays with retraction and copied them into each output row (a fifth of the job's JVM
 * time). Here a row in costs a ring write; a window out is one byte row: S means, S standard
 * deviations and S counts as little-endian doubles, the slices {@link PackCountWindows}'
 * batch layout concatenates.
 *
 * <p>Input rows come from the tumbling window in event-time order per sensor. Output rows are
 * led by the partition key ({@code sensor}) and end in the input's {@code rowtime}.
 */
@FunctionHint(
        output = @DataTypeHint(
                "ROW<first_start BIGINT, window_end_ms BIGINT, closed_ts BIGINT, features BYTES>"))
public class CountWindows extends ProcessTableFunction<Row> {

    /** One sensor's last S aggregates; public fields for Flink's structured-type serializer. */
    public static class Ring {
        public double[] means;
        public double[] stddevs;
        public double[] counts;
        public long[] starts;
        /** aggregates seen, all time: the ring's next slot is {@code seen % S} */
        public long seen;
    }

    public void eval(
            @StateHint Ring ring,
            @ArgumentHint(value = SET_SEMANTIC_TABLE, name = "input") Row in,
            @ArgumentHint(name = "seq_len") Integer seqLen,
            @ArgumentHint(name = "slide") Integer slide,
            @ArgumentHint(name = "window_ms") Long windowMs) {
        int s = seqLen;
        if (ring.means == null || ring.means.length != s) {
            ring.means = new double[s];
            ring.stddevs = new double[s];
            ring.counts = new double[s];
            ring.starts = new long[s];
            ring.seen = 0;
        }
        int slot = (int) (ring.seen % s);
        ring.means[slot] = in.<Double>getFieldAs("mean");
        ring.stddevs[slot] = in.<Double>getFieldAs("stddev");
        ring.counts[slot] = in.<Long>getFieldAs("cnt");
        ring.starts[slot] = in.<Long>getFieldAs("window_start_ms");
        ring.seen += 1;
        long end = in.<Long>getFieldAs("window_end_ms");
        if (ring.seen < s || (end / windowMs) % slide != 0) {
            return;
        }
        // oldest first: the slot after the one just written
        ByteBuffer buf = ByteBuffer.allocate(24 * s).order(ByteOrder.LITTLE_ENDIAN);
        long first = Long.MAX_VALUE;
        for (int k = 0; k < 3; k++) {
            double[] col = k == 0 ? ring.means : k == 1 ? ring.stddevs : ring.counts;
            for (int i = 1; i <= s; i++) {
                buf.putDouble(col[(slot + i) % s]);
            }
        }
        for (long t : ring.starts) {
            first = Math.min(first, t);
        }
        collect(Row.of(first, end, in.<Long>getFieldAs("closed_ts"), buf.array()));
    }
}
