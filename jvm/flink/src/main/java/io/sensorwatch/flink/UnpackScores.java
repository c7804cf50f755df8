package io.sensorwatch.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * SQL table function: {@code unpack_scores(bytes)} yields one row per scored window of the
 * compact batch the Python scorer emits ({@code sensorwatch.udfs.batch.encode_scores} writes it).
 *
 * <p>Why: a Python row costs about 50 µs in PyFlink, so the scorer hands back one row per batch
 * and the per-window rows that the incident stage needs are made here, in the JVM. Layout,
 * little-endian:
 *
 * <pre>
 *   int32 n
 *   int64 end[n], int64 closed[n], int64 version[n]
 *   float64 score[n], threshold[n], seed_n[n], seed_mean[n], seed_var[n]
 *   int8 top_step[n], int8 top_feature[n], int8 hint[n]
 *   UTF-8 lines "sensor\tmodel\tdrivers" joined by '\n' (drivers: a device model's
 *   "tag:share,..." of the tags that drove the score; empty for a sensor model)
 * </pre>
 */
@FunctionHint(
        output = @DataTypeHint(
                "ROW<sensor STRING, window_end BIGINT, closed_ts BIGINT, model STRING, version BIGINT, score DOUBLE,"
                        + " threshold DOUBLE, seed_n DOUBLE, seed_mean DOUBLE, seed_var DOUBLE, top_step INT,"
                        + " top_feature INT, hint INT, drivers STRING>"))
public class UnpackScores extends TableFunction<Row> {

    public void eval(byte[] buf) {
        if (buf == null) {
            return;
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        int n = b.getInt();
        int fixed = 4 + n * (3 * 8 + 5 * 8 + 3);
        if (n < 0 || buf.length < fixed) {
            throw new IllegalArgumentException("score batch of " + buf.length + " bytes cannot hold " + n + " windows");
        }
        long[][] longs = new long[3][n];
        for (long[] col : longs) {
            for (int i = 0; i < n; i++) {
                col[i] = b.getLong();
            }
        }
        double[][] doubles = new double[5][n];
        for (double[] col : doubles) {
            for (int i = 0; i < n; i++) {
                col[i] = b.getDouble();
            }
        }
        byte[][] small = new byte[3][n];
        for (byte[] col : small) {
            b.get(col);
        }
        String[] lines = n == 0 ? new String[0]
                : new String(buf, fixed, buf.length - fixed, StandardCharsets.UTF_8).split("\n", -1);
        if (lines.length != n) {
            throw new IllegalArgumentException("score batch names " + lines.length + " windows for " + n);
        }
        for (int i = 0; i < n; i++) {
            String[] parts = lines[i].split("\t", 3);
            if (parts.length != 3) {
                throw new IllegalArgumentException("score batch line " + i + " is not sensor, model, drivers");
            }
            collect(Row.of(
                    parts[0], longs[0][i], longs[1][i], parts[1], longs[2][i],
                    doubles[0][i], doubles[1][i], doubles[2][i], doubles[3][i], doubles[4][i],
                    (int) small[0][i], (int) small[1][i], (int) small[2][i], parts[2].isEmpty() ? null : parts[2]));
        }
    }
}
