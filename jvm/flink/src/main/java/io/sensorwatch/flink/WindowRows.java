package io.sensorwatch.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * A batch of sensor count windows as {@link PackWindows} wrote it, read in place (absolute reads
 * of the byte buffer: a record reads only its own window). The Python twin is
 * {@code sensorwatch.udfs.batch.decode}.
 */
final class WindowRows {
    /** First int32 of a device batch ({@link PackDeviceWindows}); a sensor batch starts with its size. */
    static final int DEVICE_MAGIC = -2;

    final int n;
    final int seqLen;
    final String[] sensor;
    private final ByteBuffer buf;

    private WindowRows(ByteBuffer buf, int n, int seqLen, String[] sensor) {
        this.buf = buf;
        this.n = n;
        this.seqLen = seqLen;
        this.sensor = sensor;
    }

    /** Whether {@code batch} holds device windows (which their own decoder reads). */
    static boolean isDeviceBatch(byte[] batch) {
        return batch.length >= 4 && ByteBuffer.wrap(batch).order(ByteOrder.LITTLE_ENDIAN).getInt(0) == DEVICE_MAGIC;
    }

    static WindowRows decode(byte[] batch) {
        if (batch.length < 8) {
            throw new IllegalArgumentException("window batch of " + batch.length + " bytes has no header");
        }
        ByteBuffer b = ByteBuffer.wrap(batch).order(ByteOrder.LITTLE_ENDIAN);
        int n = b.getInt(0);
        int s = b.getInt(4);
        long fixed = 8L + 24L * n + 24L * n * s;
        if (n < 0 || s < 0 || batch.length < fixed) {
            throw new IllegalArgumentException("window batch header n=" + n + " S=" + s + " does not fit " + batch.length + " bytes");
        }
        String[] names = n == 0 ? new String[0]
                : new String(batch, (int) fixed, batch.length - (int) fixed, StandardCharsets.UTF_8).split("\n", -1);
        if (names.length != n) {
            throw new IllegalArgumentException("window batch names " + names.length + " sensors for " + n + " windows");
        }
        return new WindowRows(b, n, s, names);
    }

    private void check(int i) {
        if (i < 0 || i >= n) {
            throw new IndexOutOfBoundsException("window " + i + " of a batch of " + n);
        }
    }

    /** Start of window {@code i}'s first tumbling window, epoch ms. */
    long start(int i) {
        check(i);
        return buf.getLong(8 + 8 * i);
    }

    /** End of window {@code i}'s last tumbling window (its event time), epoch ms. */
    long end(int i) {
        check(i);
        return buf.getLong(8 + 8 * (n + i));
    }

    /** Wall-clock time window {@code i}'s last tumbling window fired, epoch ms. */
    long closed(int i) {
        check(i);
        return buf.getLong(8 + 8 * (2 * n + i));
    }

    /** Feature {@code k} (0 mean, 1 stddev, 2 count) of window {@code i} at step {@code step}. */
    double feature(int k, int i, int step) {
        check(i);
        return buf.getDouble(8 + 24 * n + 8 * ((k * n + i) * seqLen + step));
    }
}
