package io.sensorwatch.flink;

import java.nio.charset.StandardCharsets;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;
import java.time.format.DateTimeParseException;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.StreamReadFeature;

/**
 * The reading contract, enforced in the JVM so that per-reading work never crosses into Python.
 *
 * <p>A reading is a JSON object with exactly the fields {@code device}, {@code tag}, {@code ts}
 * and {@code value}. The rules, and the reason codes they produce, are mirrored one for one by
 * {@code sensorwatch/contracts.py}; both are tested against {@code tests/vectors/readings.json}.
 * A rejected reading is never dropped: the job routes it to the dead-letter topic with the reason.
 */
public final class ReadingParser {

    /** Ids become Kafka keys, model names and directory names: a conservative alphabet. */
    static final String ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}";

    /** Largest epoch-millisecond value accepted at all (9999-12-31T23:59:59.999Z). */
    static final long MAX_TS = 253402300799999L;

    static final JsonFactory FACTORY =
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private ReadingParser() {}

    /** Outcome of parsing one payload: either all four fields, or a reason. */
    public static final class Result {
        public String device;
        public String tag;
        public Long ts;
        public Double value;
        public String reason;

        static Result reject(String code, String detail) {
            Result r = new Result();
            r.reason = detail == null ? code : code + ": " + truncate(detail);
            return r;
        }

        /** From a whole reason, {@code "code: detail"}, as the helpers below return it. */
        static Result rejected(String reason) {
            int colon = reason.indexOf(": ");
            return colon < 0 ? reject(reason, null) : reject(reason.substring(0, colon), reason.substring(colon + 2));
        }
    }

    private static final ThreadLocal<ParseMemo<Result>> LAST =
            ThreadLocal.withInitial(() -> new ParseMemo<>(ReadingParser::parse));

    /** {@link #parse}, remembering the last call of this thread ({@link ParseMemo} says why). */
    public static Result parseMemo(
            String payload, Long kafkaTs, long maxPastMs, long maxFutureMs, int maxBytes,
            double maxAbsValue) {
        return LAST.get().parse(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbsValue);
    }

    /** {@code id} matches {@link #ID_PATTERN}; a loop, because a regex cost 10% of the job's CPU. */
    static boolean isId(String id) {
        int n = id.length();
        if (n == 0 || n > 64) {
            return false;
        }
        for (int i = 0; i < n; i++) {
            char c = id.charAt(i);
            boolean alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) {
                return false;
            }
        }
        return true;
    }

    /**
     * Parses and validates one payload.
     *
     * @param payload the Kafka record value as text (null for a tombstone)
     * @param kafkaTs the Kafka record timestamp in epoch ms, or null when unknown
     * @param maxPastMs how far before kafkaTs the reading's ts may lie
     * @param maxFutureMs how far after kafkaTs the reading's ts may lie
     * @param maxBytes largest payload accepted, in UTF-8 bytes
     * @param maxAbsValue largest |value| accepted
     */
    public static Result parse(
            String payload, Long kafkaTs, long maxPastMs, long maxFutureMs, int maxBytes,
            double maxAbsValue) {
        if (payload == null) {
            return Result.reject("empty", "record has no value");
        }
        String tooLarge = sizeError(payload, maxBytes);
        if (tooLarge != null) {
            return Result.rejected(tooLarge);
        }
        Result r = new Result();
        try (JsonParser p = FACTORY.createParser(payload)) {
            String notObject = objectStartError(p);
            if (notObject != null) {
                return Result.rejected(notObject);
            }
            boolean hasTs = false;
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken v = p.nextToken();
                switch (name) {
                    case "device":
                    case "tag":
                        String badId = idError(name, p, v);
                        if (badId != null) {
                            return Result.rejected(badId);
                        }
                        String id = p.getText();
                        if (name.equals("device")) {
                            r.device = id;
                        } else {
                            r.tag = id;
                        }
                        break;
                    case "ts":
                        hasTs = true;
                        long[] out = TS_OUT.get();
                        String badTs = readTs(p, v, out);
                        if (badTs != null) {
                            return Result.rejected(badTs);
                        }
                        r.ts = out[0];
                        break;
                    case "value":
                        String badValue = valueError(p, v, maxAbsValue);
                        if (badValue != null) {
                            return Result.rejected(badValue);
                        }
                        r.value = p.getValueAsDouble();
                        break;
                    default:
                        return Result.reject("unknown_field", "unknown field " + quote(name));
                }
            }
            if (t != JsonToken.END_OBJECT) {
                return Result.reject("malformed_json", "unexpected " + kind(t));
            }
            if (p.nextToken() != null) {
                return Result.reject("malformed_json", "trailing data after the object");
            }
            if (r.device == null) {
                return Result.reject("missing_field", "missing field \"device\"");
            }
            if (r.tag == null) {
                return Result.reject("missing_field", "missing field \"tag\"");
            }
            if (!hasTs) {
                return Result.reject("missing_field", "missing field \"ts\"");
            }
            if (r.value == null) {
                return Result.reject("missing_field", "missing field \"value\"");
            }
        } catch (JsonProcessingException e) {
            return Result.reject("malformed_json", e.getOriginalMessage());
        } catch (java.io.IOException e) {
            return Result.reject("malformed_json", e.getMessage());
        }
        String badTime = timeError(r.ts, kafkaTs, maxPastMs, maxFutureMs);
        return badTime == null ? r : Result.rejected(badTime);
    }

    private static final ThreadLocal<long[]> TS_OUT = ThreadLocal.withInitial(() -> new long[1]);

    /**
     * Reads the payload's first token: the reason it does not open a JSON object, else null.
     * Syntax before shape, as the Python mirror (json.loads first): "[1,2" is malformed JSON,
     * "[1,2]" a JSON array.
     */
    static String objectStartError(JsonParser p) throws java.io.IOException {
        JsonToken first = p.nextToken();
        if (first == null) {
            return "empty: payload is empty";
        }
        if (first == JsonToken.START_OBJECT) {
            return null;
        }
        p.skipChildren();
        if (p.nextToken() != null) {
            return "malformed_json: trailing data after the " + kind(first);
        }
        return "not_object: payload is a JSON " + kind(first) + ", not an object";
    }

    /** The reason the id field {@code name}, token {@code v}, is not a string matching {@link #ID_PATTERN}, else null. */
    static String idError(String name, JsonParser p, JsonToken v) throws java.io.IOException {
        if (v != JsonToken.VALUE_STRING) {
            return "bad_type: " + name + " must be a string, got " + kind(v);
        }
        return isId(p.getText()) ? null : "bad_id: " + name + " must match " + ID_PATTERN + ", got " + quote(p.getText());
    }

    /** "too_large: ..." when {@code payload} exceeds {@code maxBytes} UTF-8 bytes, else null. */
    static String sizeError(String payload, int maxBytes) {
        // Cheap bound first: a char is at most 3 UTF-8 bytes here, and at least one.
        if (payload.length() > maxBytes
                || (payload.length() * 3 > maxBytes
                        && payload.getBytes(StandardCharsets.UTF_8).length > maxBytes)) {
            return "too_large: payload of " + payload.getBytes(StandardCharsets.UTF_8).length
                    + " bytes exceeds " + maxBytes;
        }
        return null;
    }

    /** Reads the ts token {@code v} into {@code out[0]}; the reason when it is not a time, else null. */
    static String readTs(JsonParser p, JsonToken v, long[] out) throws java.io.IOException {
        if (v == JsonToken.VALUE_NUMBER_INT) {
            if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                return "bad_ts: ts " + truncate(p.getText()) + " is out of range";
            }
            out[0] = p.getLongValue();
            return null;
        }
        if (v == JsonToken.VALUE_STRING) {
            try {
                out[0] = OffsetDateTime.parse(p.getText(), DateTimeFormatter.ISO_OFFSET_DATE_TIME)
                        .toInstant().toEpochMilli();
                return null;
            } catch (DateTimeParseException | ArithmeticException e) {
                return "bad_ts: ts string must be ISO-8601 with a UTC offset, got " + quote(p.getText());
            }
        }
        return "bad_type: ts must be epoch milliseconds or an ISO-8601 string, got " + kind(v);
    }

    /** The reason the value token {@code v} is not an accepted number, else null (read it with getValueAsDouble). */
    static String valueError(JsonParser p, JsonToken v, double maxAbsValue) throws java.io.IOException {
        if (v != JsonToken.VALUE_NUMBER_INT && v != JsonToken.VALUE_NUMBER_FLOAT) {
            return "bad_type: value must be a number, got " + kind(v);
        }
        double d = p.getValueAsDouble();
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            return "bad_value: value " + truncate(p.getText()) + " is not finite";
        }
        if (Math.abs(d) > maxAbsValue) {
            return "bad_value: value " + truncate(p.getText()) + " exceeds |" + maxAbsValue + "|";
        }
        return null;
    }

    /** The reason {@code ts} is outside the calendar or the record time's bounds, else null. */
    static String timeError(long ts, Long kafkaTs, long maxPastMs, long maxFutureMs) {
        if (ts < 0 || ts > MAX_TS) {
            return "bad_ts: ts " + ts + " is outside year 1970..9999";
        }
        if (kafkaTs != null) {
            if (ts < kafkaTs - maxPastMs) {
                return "ts_too_old: ts " + ts + " is more than " + maxPastMs + " ms before the record time " + kafkaTs;
            }
            if (ts > kafkaTs + maxFutureMs) {
                return "ts_in_future: ts " + ts + " is more than " + maxFutureMs + " ms after the record time " + kafkaTs;
            }
        }
        return null;
    }

    static String kind(JsonToken t) {
        if (t == null) {
            return "end of input";
        }
        switch (t) {
            case START_OBJECT:
                return "object";
            case START_ARRAY:
                return "array";
            case VALUE_STRING:
                return "string";
            case VALUE_NUMBER_INT:
            case VALUE_NUMBER_FLOAT:
                return "number";
            case VALUE_TRUE:
            case VALUE_FALSE:
                return "boolean";
            case VALUE_NULL:
                return "null";
            default:
                return t.name().toLowerCase();
        }
    }

    static String quote(String s) {
        return "\"" + truncate(s) + "\"";
    }

    static String truncate(String s) {
        if (s == null) {
            return "";
        }
        return s.length() <= 80 ? s : s.substring(0, 80) + "...(" + s.length() + " chars)";
    }
}
