package io.sensorwatch.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

/**
 * SQL table function: {@code unpack_scores(bytes)} yields one row per scored window of the
 * compact batch the Python scorer emits (the layout: {@link ScoreRows}), for the incident stage.
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
        ScoreRows r = ScoreRows.decode(buf);
        for (int i = 0; i < r.n; i++) {
            collect(Row.of(
                    r.sensor[i], r.end[i], r.closed[i], r.model[i], r.version[i],
                    r.score[i], r.threshold[i], r.seedN[i], r.seedMean[i], r.seedVar[i],
                    (int) r.topStep[i], (int) r.topFeature[i], (int) r.hint[i], r.drivers[i]));
        }
    }
}
