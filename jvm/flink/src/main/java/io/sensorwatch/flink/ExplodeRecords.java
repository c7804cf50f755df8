package io.sensorwatch.flink;

import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonGenerator;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * SQL table function: {@code explode_records(batch, scores, emit_scores)} yields the anomaly
 * record of every anomalous window a sensor model scored, and with {@code emit_scores} the score
 * record of every other one: {@code (kind, k, v)} rows for the anomalies and scores topics.
 *
 * <p>Why here and not in Python: the scorer hands back one compact row per batch ({@link
 * ScoreRows}) and this builds each window's JSON from it and from the batch the scorer read
 * ({@link WindowRows}), in the JVM; a Python row and a Python JSON dump per window cost more than
 * the scoring (docs/BENCHMARKS.md). Device batches are skipped: their records (tags, shares,
 * unknown tags) come from the Python scorer. The record is {@code sensorwatch.core.contracts
 * .anomaly_record}'s, field for field in its order; a test holds the two equal.
 */
@FunctionHint(output = @DataTypeHint("ROW<kind STRING, k STRING, v STRING>"))
public class ExplodeRecords extends TableFunction<Row> {

    /** The {@code kind} values of {@code sensorwatch.core.outputs}' anomaly and score rows. */
    static final String ANOMALY = "anomaly";
    static final String SCORE = "score";

    private static final JsonFactory JSON = new JsonFactory();

    public void eval(byte[] batch, byte[] scores, Boolean emitScores) {
        if (batch == null || scores == null || WindowRows.isDeviceBatch(batch)) {
            return;
        }
        WindowRows w = WindowRows.decode(batch);
        ScoreRows r = ScoreRows.decode(scores);
        boolean all = Boolean.TRUE.equals(emitScores);
        long now = System.currentTimeMillis();
        for (int i = 0; i < r.n; i++) {
            boolean anomalous = r.anomaly[i] != 0;
            if (!anomalous && !all) {
                continue;
            }
            int row = r.row[i];
            if (!w.sensor[row].equals(r.sensor[i]) || w.end(row) != r.end[i]) {
                throw new IllegalArgumentException("score " + i + " (" + r.sensor[i] + "@" + r.end[i]
                        + ") does not match window " + row + " of its batch (" + w.sensor[row] + "@" + w.end(row) + ")");
            }
            String key = r.sensor[i] + "@" + r.end[i];
            collect(Row.of(anomalous ? ANOMALY : SCORE, key, record(w, r, i, key, now)));
        }
    }

    private static String record(WindowRows w, ScoreRows r, int i, String key, long now) {
        int row = r.row[i];
        String sensor = r.sensor[i];
        int slash = sensor.indexOf('/');
        StringWriter out = new StringWriter(1024);
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("key", key);
            g.writeStringField("status", r.prior[i] != 0 ? "prior" : "scored");
            g.writeStringField("granularity", "sensor");
            g.writeStringField("sensor", sensor);
            g.writeStringField("device", sensor.substring(0, slash));
            g.writeStringField("tag", sensor.substring(slash + 1));
            g.writeNumberField("window_start", w.start(row));
            g.writeNumberField("window_end", r.end[i]);
            steps(g, "values", w, 0, row);
            g.writeNumberField("score", r.score[i]);
            g.writeNumberField("threshold", r.threshold[i]);
            g.writeBooleanField("is_anomaly", r.anomaly[i] != 0);
            g.writeStringField("model_name", r.model[i]);
            g.writeNumberField("model_version", r.version[i]);
            g.writeNumberField("event_ts", r.end[i]);
            g.writeNumberField("processing_ts", now);
            int e = r.errorsPerWindow;
            if (e == 0 || Double.isNaN(r.perStepError[i * e])) {
                g.writeNullField("per_step_error");
            } else {
                g.writeArrayFieldStart("per_step_error");
                for (int k = 0; k < e; k++) {
                    g.writeNumber(r.perStepError[i * e + k]);
                }
                g.writeEndArray();
            }
            steps(g, "stddev", w, 1, row);
            steps(g, "counts", w, 2, row);
            g.writeNumberField("window_closed_ts", r.closed[i]);
            g.writeNullField("error");
            g.writeNullField("tags");
            g.writeNullField("unknown_tags");
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing the record of " + key, e);
        }
        return out.toString();
    }

    private static void steps(JsonGenerator g, String name, WindowRows w, int feature, int row) throws IOException {
        g.writeArrayFieldStart(name);
        for (int s = 0; s < w.seqLen; s++) {
            g.writeNumber(w.feature(feature, row, s));
        }
        g.writeEndArray();
    }
}
