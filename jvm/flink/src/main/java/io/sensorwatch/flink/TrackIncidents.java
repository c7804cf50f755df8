package io.sensorwatch.flink;

import static org.apache.flink.table.annotation.ArgumentTrait.SET_SEMANTIC_TABLE;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * Process table function: each sensor's calibration and incident lifecycle, in Flink keyed
 * state (so checkpoints and savepoints hold it). The rules are {@code sensorwatch.core.incidents}'
 * (the Python reference); a test feeds both the same scores and holds them equal.
 *
 * <pre>
 * SELECT * FROM track_incidents(
 *   input => TABLE window_scores PARTITION BY sensor, uid => 'incidents',
 *   horizon => 8640, short_windows => 10, learning => 288, clip_sd => 6, alert_tail => 1e-4, close_after => 16,
 *   silence_ms => ..., window_ms => ..., seq_len => 16, features => 'mean,stddev,count',
 *   hints => ',spike,...')
 * </pre>
 *
 * <p>Input rows: one scored window each (see {@link UnpackScores}), in event-time order per
 * sensor (each sensor is scored by one shard, which emits its batches in window order). Output:
 * {@code k} (the incident id, {@code sensor@start}: the same on a replay) and {@code v} (the
 * incident record's JSON) for each incident opened or closed.
 */
@FunctionHint(output = @DataTypeHint("ROW<k STRING, v STRING>"))
public class TrackIncidents extends ProcessTableFunction<Row> {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** One sensor's state; public fields for Flink's structured-type serializer. */
    public static class State {
        // calibration
        public long n;
        public double mean;
        public double var;
        public double[] recent;
        public int recentLen;
        public int recentPos;
        public Long version;
        /** The model whose scores the calibration holds (a fleet prior's, then the sensor's own). */
        public String scoredBy;
        public long lastEnd;
        // incident
        public long count;
        public boolean open;
        public long start;
        public long lastAnomalous;
        public double peakScore;
        public double peakThreshold;
        public int peakSeverity;
        public long windows;
        public int normalRun;
        public boolean learning;
        public String model;
        public long peakEnd;
        public int peakStep;
        public int peakFeature;
        public int peakHint;
        public String peakDrivers;
    }

    public void eval(
            @StateHint State st,
            @ArgumentHint(value = SET_SEMANTIC_TABLE, name = "input") Row in,
            @ArgumentHint(name = "horizon") Integer horizon,
            @ArgumentHint(name = "short_windows") Integer shortWindows,
            @ArgumentHint(name = "learning") Integer learning,
            @ArgumentHint(name = "clip_sd") Double clipSd,
            @ArgumentHint(name = "alert_tail") Double alertTail,
            @ArgumentHint(name = "close_after") Integer closeAfter,
            @ArgumentHint(name = "silence_ms") Long silenceMs,
            @ArgumentHint(name = "window_ms") Long windowMs,
            @ArgumentHint(name = "seq_len") Integer seqLen,
            @ArgumentHint(name = "features") String features,
            @ArgumentHint(name = "hints") String hints)
            throws Exception {
        String sensor = in.getFieldAs("sensor");
        long end = in.<Long>getFieldAs("window_end");
        long version = in.<Long>getFieldAs("version");
        double score = in.<Double>getFieldAs("score");
        double threshold = in.<Double>getFieldAs("threshold");
        if (st.recent == null || st.recent.length != shortWindows) {
            st.recent = new double[shortWindows];
            st.recentLen = 0;
            st.recentPos = 0;
        }
        if (st.open && st.lastEnd > 0 && end - st.lastEnd > silenceMs) {
            // the sensor was silent for longer than the timeout: the incident ends where its evidence did
            st.open = false;
            emit(sensor, "closed", "silence", st.lastEnd, in, st, windowMs, seqLen, features, hints);
        }
        String model = in.getFieldAs("model");
        if (st.version == null || st.version != version || !java.util.Objects.equals(st.scoredBy, model)) {
            // another model or version (a new sensor's own model after its fleet prior): its scores
            // live on another scale, so the history starts again from its seed
            reseed(st, in.getFieldAs("seed_n"), in.getFieldAs("seed_mean"), in.getFieldAs("seed_var"));
            st.version = version;
            st.scoredBy = model;
        }
        st.lastEnd = end;
        boolean isLearning = st.n < learning;
        double tail = update(st, score, isLearning, horizon, clipSd);
        boolean anomalous = isLearning ? score > threshold : tail <= alertTail;
        int sev = isLearning ? 0 : severity(tail);
        if (anomalous) {
            st.normalRun = 0;
            if (!st.open) {
                st.open = true;
                st.count += 1;
                st.start = end;
                st.learning = isLearning;
                st.peakScore = Double.NEGATIVE_INFINITY;
                st.peakSeverity = 0;
                st.windows = 0;
                note(st, in, end, score, threshold, sev);
                emit(sensor, "opened", null, end, in, st, windowMs, seqLen, features, hints);
                return;
            }
            note(st, in, end, score, threshold, sev);
            return;
        }
        if (st.open) {
            st.normalRun += 1;
            if (st.normalRun >= closeAfter) {
                st.open = false;
                emit(sensor, "closed", "recovery", end, in, st, windowMs, seqLen, features, hints);
            }
        }
    }

    static void reseed(State st, Double seedN, Double seedMean, Double seedVar) {
        st.recentLen = 0;
        st.recentPos = 0;
        boolean seeded = seedN != null && seedMean != null && seedVar != null
                && seedN > 0 && !Double.isNaN(seedN) && !Double.isNaN(seedMean) && !Double.isNaN(seedVar);
        st.n = seeded ? Math.round(seedN) : 0;
        st.mean = seeded ? seedMean : 0.0;
        st.var = seeded ? seedVar : 0.0;
    }

    /** The tail probability of the evidence ending at {@code score} (1 while learning); then it joins the history. */
    static double update(State st, double score, boolean isLearning, int horizon, double clipSd) {
        int k = st.recent.length;
        st.recent[st.recentPos] = score;
        st.recentPos = (st.recentPos + 1) % k;
        st.recentLen = Math.min(st.recentLen + 1, k);
        double tail = 1.0;
        if (!isLearning) {
            double sum = 0.0;
            int oldest = (st.recentPos - st.recentLen + k) % k;
            for (int i = 0; i < st.recentLen; i++) {
                sum += st.recent[(oldest + i) % k];
            }
            double evidence = sum / st.recentLen;
            double sd = Math.sqrt(st.var);
            double z = (evidence - st.mean) / Math.max(sd, 1e-9 * Math.max(Math.abs(st.mean), 1e-12));
            tail = 0.5 * erfc(z / Math.sqrt(2.0));
        }
        double sdNow = Math.sqrt(st.var);
        double joins = st.n > 0 && sdNow > 0 ? Math.min(score, st.mean + clipSd * sdNow) : score;
        st.n += 1;
        double a = Math.max(1.0 / st.n, 1.0 / horizon);
        double d = joins - st.mean;
        st.mean += a * d;
        st.var = (1.0 - a) * (st.var + a * d * d);
        return tail;
    }

    /** Numerical Recipes' erfcc, term for term as {@code sensorwatch.core.incidents.erfc}. */
    static double erfc(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
                + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
        double r = t * Math.exp(poly);
        return x >= 0 ? r : 2.0 - r;
    }

    static int severity(double tail) {
        if (tail <= 0) {
            return 100;
        }
        return (int) Math.max(0, Math.min(100, Math.floor(-10.0 * Math.log10(tail) + 0.5)));
    }

    private static void note(State st, Row in, long end, double score, double threshold, int sev) {
        st.lastAnomalous = end;
        st.windows += 1;
        st.peakSeverity = Math.max(st.peakSeverity, sev);
        st.model = in.getFieldAs("model");
        if (score > st.peakScore) {
            st.peakScore = score;
            st.peakThreshold = threshold;
            st.peakEnd = end;
            st.peakStep = in.<Integer>getFieldAs("top_step");
            st.peakFeature = in.<Integer>getFieldAs("top_feature");
            st.peakHint = in.<Integer>getFieldAs("hint");
            st.peakDrivers = in.getFieldAs("drivers");
        }
    }

    private void emit(
            String sensor, String event, String closedBy, long eventEnd, Row in, State st,
            long windowMs, int seqLen, String features, String hints) throws Exception {
        String[] featureNames = features.split(",", -1);
        String[] hintNames = hints.split(",", -1);
        boolean closed = "closed".equals(event);
        ObjectNode rec = JSON.createObjectNode();
        String id = sensor + "@" + st.start;
        rec.put("incident_id", id);
        rec.put("event", event);
        rec.put("sensor", sensor);
        int slash = sensor.indexOf('/');
        rec.put("device", slash < 0 ? sensor : sensor.substring(0, slash));
        rec.put("incident", st.count);
        rec.put("start", st.start);
        if (closed) {
            rec.put("end", st.lastAnomalous);
            rec.put("duration_ms", st.lastAnomalous - st.start + windowMs);
            rec.put("closed_by", closedBy);
        } else {
            rec.putNull("end");
            rec.putNull("duration_ms");
            rec.putNull("closed_by");
        }
        rec.put("event_window_end", eventEnd);
        rec.put("windows", st.windows);
        rec.put("model_name", st.model);
        rec.put("model_version", st.version);
        rec.put("peak_score", st.peakScore);
        rec.put("threshold", st.peakThreshold);
        rec.put("severity", st.peakSeverity);
        rec.put("learning", st.learning);
        ObjectNode why = rec.putObject("explanation");
        why.put("window_end", st.peakEnd);
        why.put("step", st.peakStep);
        why.put("step_end", st.peakEnd - (long) (seqLen - 1 - st.peakStep) * windowMs);
        why.put("feature", st.peakFeature >= 0 && st.peakFeature < featureNames.length
                ? featureNames[st.peakFeature] : null);
        String hint = st.peakHint > 0 && st.peakHint < hintNames.length ? hintNames[st.peakHint] : null;
        if (hint == null) {
            why.putNull("kind_hint");
        } else {
            why.put("kind_hint", hint);
        }
        if (st.peakDrivers == null) {
            why.putNull("tags");
        } else {
            // a device model's drivers, "tag:share,...": which of the device's tags, and how much
            ArrayNode tags = why.putArray("tags");
            for (String part : st.peakDrivers.split(",")) {
                int colon = part.lastIndexOf(':');
                ObjectNode t = tags.addObject();
                t.put("tag", part.substring(0, colon));
                t.put("share", Double.parseDouble(part.substring(colon + 1)));
            }
        }
        rec.put("window_closed_ts", in.<Long>getFieldAs("closed_ts"));
        rec.put("emitted_ts", System.currentTimeMillis());
        collect(Row.of(id, JSON.writeValueAsString(rec)));
    }
}
