package io.sensorwatch.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * SQL aggregate for a bounded {@code OVER (... ROWS S-1 PRECEDING)} window:
 * {@code count_window(start_ms, mean, stddev, count, S)} is a sensor's last S tumbling windows as
 * one little-endian byte row, or null while fewer than S have passed.
 *
 * <pre>
 *   int64 first_start, float64 mean[S], float64 stddev[S], float64 count[S]
 * </pre>
 *
 * <p>Why: it replaces {@code MIN(...) OVER w} and three {@code ARRAY_AGG(...) OVER w}. Those
 * keep their retractable accumulators in Flink's state views (a map for MIN, two lists for each
 * ARRAY_AGG) and build three boxed arrays per window, for every sensor and window. Here the
 * accumulator is a ring of S slots held as a RAW value, which Flink's heap state keeps as the
 * object itself: a window costs a few array stores and one byte row. The OVER operator retracts
 * the oldest row before it adds the newest, so the ring's retract must always meet its oldest
 * slot; anything else is a broken contract, and says so.
 */
@FunctionHint(
        input = {
            @DataTypeHint("BIGINT"),
            @DataTypeHint("DOUBLE"),
            @DataTypeHint("DOUBLE"),
            @DataTypeHint("BIGINT"),
            @DataTypeHint("INT")
        },
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = CountWindow.Ring.class),
        output = @DataTypeHint("BYTES"))
public class CountWindow extends AggregateFunction<byte[], CountWindow.Ring> {

    /** The last S windows: slot {@code (head + i) % S} is the i-th oldest of {@code n}. */
    public static class Ring {
        public int size = -1;
        public int head;
        public int n;
        public long[] starts;
        public double[] means;
        public double[] stddevs;
        public double[] counts;

        void allocate(int s) {
            if (s < 1) {
                throw new IllegalArgumentException("count windows need a length of at least 1, got " + s);
            }
            size = s;
            starts = new long[s];
            means = new double[s];
            stddevs = new double[s];
            counts = new double[s];
        }
    }

    @Override
    public Ring createAccumulator() {
        return new Ring();
    }

    public void accumulate(Ring acc, Long startMs, Double mean, Double stddev, Long count, Integer seqLen) {
        if (acc.size < 0) {
            acc.allocate(seqLen);
        } else if (acc.size != seqLen) {
            throw new IllegalArgumentException("count windows of length " + acc.size + " and " + seqLen);
        }
        if (acc.n == acc.size) {
            throw new IllegalStateException(
                    "a count window of " + acc.size + " got its next row before its oldest was retracted");
        }
        int slot = (acc.head + acc.n) % acc.size;
        acc.starts[slot] = startMs;
        acc.means[slot] = mean;
        acc.stddevs[slot] = stddev;
        acc.counts[slot] = count;
        acc.n++;
    }

    public void retract(Ring acc, Long startMs, Double mean, Double stddev, Long count, Integer seqLen) {
        if (acc.n == 0 || acc.starts[acc.head] != startMs) {
            throw new IllegalStateException("a count window retracted the window starting at " + startMs
                    + ", not its oldest (" + (acc.n == 0 ? "none" : String.valueOf(acc.starts[acc.head])) + ")");
        }
        acc.head = (acc.head + 1) % acc.size;
        acc.n--;
    }

    public void resetAccumulator(Ring acc) {
        acc.head = 0;
        acc.n = 0;
    }

    @Override
    public byte[] getValue(Ring acc) {
        int s = acc.size;
        if (s < 0 || acc.n < s) {
            return null;
        }
        ByteBuffer buf = ByteBuffer.allocate(8 + 24 * s).order(ByteOrder.LITTLE_ENDIAN);
        buf.putLong(acc.starts[acc.head]);
        for (double[] column : new double[][] {acc.means, acc.stddevs, acc.counts}) {
            for (int i = 0; i < s; i++) {
                buf.putDouble(column[(acc.head + i) % s]);
            }
        }
        return buf.array();
    }
}
