package io.sensorwatch.flink;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

/**
 * The device-message contract: one message per device and time with several values, as Azure
 * IoT Hub, AWS IoT and Sparkplug sources send them:
 * {@code {"device": "pump-1", "ts": 1700000000000, "values": {"flow": 3.2, "pressure": 1.1}}}.
 *
 * <p>The same rules and reason codes as {@link ReadingParser}, at two levels. A message that
 * breaks the envelope (syntax, fields, device id, ts, size) is rejected whole, once. A value that
 * breaks its own rules (its tag is not an id, it is not a finite number in range) is rejected
 * alone, with its tag in the reason, and the message's other values are kept. Mirrored one for
 * one by {@code sensorwatch/core/contracts.py}; both are tested against
 * {@code tests/vectors/device_messages.json}.
 */
public final class DeviceMessageParser {

    private DeviceMessageParser() {}

    /** One message: the envelope's reason, or the device, ts and one entry per value. */
    public static final class Result {
        public String device;
        public Long ts;
        /** The envelope's reason; null when the message is readable (its values may still fail). */
        public String reason;

        public final List<String> tags = new ArrayList<>();
        public final List<Double> values = new ArrayList<>();
        /** Per value: null, or why that value alone is rejected. */
        public final List<String> valueReasons = new ArrayList<>();

        static Result rejected(String reason) {
            Result r = new Result();
            r.reason = ReadingParser.Result.rejected(reason).reason;
            return r;
        }
    }

    private static final ThreadLocal<ParseMemo<Result>> LAST =
            ThreadLocal.withInitial(() -> new ParseMemo<>(DeviceMessageParser::parse));

    private static final ThreadLocal<long[]> TS_OUT = ThreadLocal.withInitial(() -> new long[1]);

    /** {@link #parse}, remembering the last call of this thread ({@link ParseMemo} says why). */
    public static Result parseMemo(
            String payload, Long kafkaTs, long maxPastMs, long maxFutureMs, int maxBytes,
            double maxAbsValue) {
        return LAST.get().parse(payload, kafkaTs, maxPastMs, maxFutureMs, maxBytes, maxAbsValue);
    }

    /** Parses and validates one message; the arguments are {@link ReadingParser#parse}'s. */
    public static Result parse(
            String payload, Long kafkaTs, long maxPastMs, long maxFutureMs, int maxBytes,
            double maxAbsValue) {
        if (payload == null) {
            return Result.rejected("empty: record has no value");
        }
        String tooLarge = ReadingParser.sizeError(payload, maxBytes);
        if (tooLarge != null) {
            return Result.rejected(tooLarge);
        }
        Result r = new Result();
        boolean hasValues = false;
        try (JsonParser p = ReadingParser.FACTORY.createParser(payload)) {
            String notObject = ReadingParser.objectStartError(p);
            if (notObject != null) {
                return Result.rejected(notObject);
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken v = p.nextToken();
                switch (name) {
                    case "device":
                        String badId = ReadingParser.idError(name, p, v);
                        if (badId != null) {
                            return Result.rejected(badId);
                        }
                        r.device = p.getText();
                        break;
                    case "ts":
                        long[] out = TS_OUT.get();
                        String badTs = ReadingParser.readTs(p, v, out);
                        if (badTs != null) {
                            return Result.rejected(badTs);
                        }
                        r.ts = out[0];
                        break;
                    case "values":
                        if (v != JsonToken.START_OBJECT) {
                            return Result.rejected("bad_type: values must be an object of tag: number, got "
                                    + ReadingParser.kind(v));
                        }
                        hasValues = true;
                        readValues(p, r, maxAbsValue);
                        break;
                    default:
                        return Result.rejected("unknown_field: unknown field " + ReadingParser.quote(name));
                }
            }
            if (t != JsonToken.END_OBJECT) {
                return Result.rejected("malformed_json: unexpected " + ReadingParser.kind(t));
            }
            if (p.nextToken() != null) {
                return Result.rejected("malformed_json: trailing data after the object");
            }
        } catch (JsonProcessingException e) {
            return Result.rejected("malformed_json: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            return Result.rejected("malformed_json: " + e.getMessage());
        }
        if (r.device == null) {
            return Result.rejected("missing_field: missing field \"device\"");
        }
        if (r.ts == null) {
            return Result.rejected("missing_field: missing field \"ts\"");
        }
        if (!hasValues) {
            return Result.rejected("missing_field: missing field \"values\"");
        }
        if (r.tags.isEmpty()) {
            return Result.rejected("empty: values holds no tag");
        }
        String badTime = ReadingParser.timeError(r.ts, kafkaTs, maxPastMs, maxFutureMs);
        return badTime == null ? r : Result.rejected(badTime);
    }

    /** The members of {@code values}, the parser on its START_OBJECT; each value checked alone. */
    private static void readValues(JsonParser p, Result r, double maxAbsValue) throws java.io.IOException {
        JsonToken t;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
            String tag = p.currentName();
            JsonToken v = p.nextToken();
            String why;
            Double value = null;
            if (!ReadingParser.isId(tag)) {
                why = "bad_id: values key must match " + ReadingParser.ID_PATTERN + ", got " + ReadingParser.quote(tag);
            } else {
                why = ReadingParser.valueError(p, v, maxAbsValue);
                if (why == null) {
                    value = p.getValueAsDouble();
                }
            }
            if (why != null) {
                why = ReadingParser.Result.rejected(why).reason;
                int colon = why.indexOf(": ");
                why = why.substring(0, colon) + ": values." + ReadingParser.truncate(tag) + ": " + why.substring(colon + 2);
            }
            p.skipChildren(); // a value that is an object or an array: its members are not tags
            r.tags.add(why == null || !why.startsWith("bad_id") ? tag : null);
            r.values.add(value);
            r.valueReasons.add(why);
        }
        if (t != JsonToken.END_OBJECT) {
            throw new JsonProcessingException("unexpected " + ReadingParser.kind(t) + " in values", p.currentLocation()) {
                private static final long serialVersionUID = 1L;
            };
        }
    }
}
