package io.sensorwatch.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The compact score batch the Python scorer emits once per batch
 * ({@code sensorwatch.udfs.batch.encode_scores} writes it), decoded column by column. Layout,
 * little-endian:
 *
 * <pre>
 *   int32 n, int32 E (per-step errors per window; 0: the models gave none)
 *   int32 row[n]                 the window's row in the batch the scorer read
 *   int64 end[n], int64 closed[n], int64 version[n]
 *   float64 score[n], threshold[n], seed_n[n], seed_mean[n], seed_var[n]
 *   int8 top_step[n], int8 top_feature[n], int8 hint[n], int8 anomaly[n], int8 prior[n]
 *                                (prior: 1 where a fleet prior scored the window, the sensor having no model)
 *   float64 per_step_error[n*E]  (NaN first: that window's model gave none)
 *   UTF-8 lines "sensor\tmodel\tdrivers" joined by '\n' (drivers: a device model's
 *   "tag:share,..." of the tags that drove the score; empty for a sensor model)
 * </pre>
 *
 * <p>Why one row per batch: a Python row costs about 50 µs in PyFlink, so the per-window rows
 * (for the incident stage, {@link UnpackScores}; for the records, {@link ExplodeRecords}) are made
 * in the JVM.
 */
final class ScoreRows {
    final int n;
    final int errorsPerWindow;
    final int[] row;
    final long[] end;
    final long[] closed;
    final long[] version;
    final double[] score;
    final double[] threshold;
    final double[] seedN;
    final double[] seedMean;
    final double[] seedVar;
    final byte[] topStep;
    final byte[] topFeature;
    final byte[] hint;
    final byte[] anomaly;
    final byte[] prior;
    final double[] perStepError;
    final String[] sensor;
    final String[] model;
    final String[] drivers;

    private ScoreRows(int n, int e) {
        this.n = n;
        this.errorsPerWindow = e;
        row = new int[n];
        end = new long[n];
        closed = new long[n];
        version = new long[n];
        score = new double[n];
        threshold = new double[n];
        seedN = new double[n];
        seedMean = new double[n];
        seedVar = new double[n];
        topStep = new byte[n];
        topFeature = new byte[n];
        hint = new byte[n];
        anomaly = new byte[n];
        prior = new byte[n];
        perStepError = new double[n * e];
        sensor = new String[n];
        model = new String[n];
        drivers = new String[n];
    }

    static ScoreRows decode(byte[] buf) {
        if (buf.length < 8) {
            throw new IllegalArgumentException("score batch of " + buf.length + " bytes has no header");
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        int n = b.getInt();
        int e = b.getInt();
        long fixed = 8L + (long) n * (4 + 3 * 8 + 5 * 8 + 5) + 8L * n * e;
        if (n < 0 || e < 0 || buf.length < fixed) {
            throw new IllegalArgumentException(
                    "score batch of " + buf.length + " bytes cannot hold " + n + " windows of " + e + " errors");
        }
        ScoreRows r = new ScoreRows(n, e);
        for (int i = 0; i < n; i++) {
            r.row[i] = b.getInt();
        }
        for (long[] col : new long[][] {r.end, r.closed, r.version}) {
            for (int i = 0; i < n; i++) {
                col[i] = b.getLong();
            }
        }
        for (double[] col : new double[][] {r.score, r.threshold, r.seedN, r.seedMean, r.seedVar}) {
            for (int i = 0; i < n; i++) {
                col[i] = b.getDouble();
            }
        }
        for (byte[] col : new byte[][] {r.topStep, r.topFeature, r.hint, r.anomaly, r.prior}) {
            b.get(col);
        }
        for (int i = 0; i < n * e; i++) {
            r.perStepError[i] = b.getDouble();
        }
        String[] lines = n == 0 ? new String[0]
                : new String(buf, (int) fixed, buf.length - (int) fixed, StandardCharsets.UTF_8).split("\n", -1);
        if (lines.length != n) {
            throw new IllegalArgumentException("score batch names " + lines.length + " windows for " + n);
        }
        for (int i = 0; i < n; i++) {
            String[] parts = lines[i].split("\t", 3);
            if (parts.length != 3) {
                throw new IllegalArgumentException("score batch line " + i + " is not sensor, model, drivers");
            }
            r.sensor[i] = parts[0];
            r.model[i] = parts[1];
            r.drivers[i] = parts[2].isEmpty() ? null : parts[2];
        }
        return r;
    }
}
