"""The bottom layer every other part shares: typed configuration (:mod:`.config`), message
contracts (:mod:`.contracts`), window rules (:mod:`.windows`), Kafka client settings
(:mod:`.kafka`), the output table (:mod:`.outputs`), the retry policy (:mod:`.retry`),
optional extras (:mod:`.optional`), the JVM jars (:mod:`.jars`) and paths (:mod:`.paths`).
It imports nothing else of sensorwatch."""
