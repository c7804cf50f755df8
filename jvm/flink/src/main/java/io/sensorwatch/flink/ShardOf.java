package io.sensorwatch.flink;

import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * SQL: {@code shard_of(sensor, n)}: CRC-32 of the sensor id modulo n.
 *
 * <p>The same hash as {@code sensorwatch.windows.model_name} (Python's {@code zlib.crc32}), so in
 * the packed layout a scoring batch holds whole models ({@code sensorwatch.jobs.sql.batch_shard}):
 * one Predict per model.
 */
public class ShardOf extends ScalarFunction {

    public int eval(String sensor, int n) {
        CRC32 crc = new CRC32();
        crc.update(sensor.getBytes(StandardCharsets.UTF_8));
        return (int) (crc.getValue() % n);
    }
}
