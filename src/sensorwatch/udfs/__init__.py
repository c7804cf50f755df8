"""What the streaming job's Python workers run: decode the JVM's window batches
(:mod:`.batch`), score them over gRPC (:mod:`.scoring`) and yield the output records, inside
the PyFlink table function :mod:`.flink`."""
