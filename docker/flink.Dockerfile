# syntax=docker/dockerfile:1
# Flink job manager, task managers and the job submitter: the official Flink image plus
# Python, PyFlink, sensorwatch and the jars of jvm/pom.xml (the Kafka SQL connector and the
# sensorwatch UDFs), built by the same pom as local development, so the versions are the same.
#   docker build -f docker/flink.Dockerfile -t sensorwatch-flink .
# The Flink tag must equal flink.version in jvm/pom.xml and apache-flink in constraints.txt
# (tests/docker checks it).
ARG FLINK_IMAGE=flink:2.2.1-scala_2.12-java17
ARG MAVEN_IMAGE=maven:3.9.9-eclipse-temurin-17

# ---- jars: the connector and the UDF jar, from Maven Central through jvm/pom.xml
FROM ${MAVEN_IMAGE} AS jars
WORKDIR /src
COPY jvm/ jvm/
RUN mvn -B -q -f jvm/pom.xml package -DskipTests -Djars.dir=/jars

# ---- python: CPython built from source (PyFlink's documented way on the Flink image, whose
# Ubuntu Python is not one apache-flink 2.2 pins), then a virtualenv with the job's extra
FROM ${FLINK_IMAGE} AS python
ARG PYTHON_VERSION=3.12.8
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential ca-certificates wget \
      libssl-dev zlib1g-dev libbz2-dev libffi-dev liblzma-dev \
 && rm -rf /var/lib/apt/lists/*
RUN wget -q "https://www.python.org/ftp/python/${PYTHON_VERSION}/Python-${PYTHON_VERSION}.tgz" \
 && tar xzf "Python-${PYTHON_VERSION}.tgz" \
 && cd "Python-${PYTHON_VERSION}" \
 && ./configure --prefix=/opt/python --enable-shared LDFLAGS="-Wl,-rpath,/opt/python/lib" \
 && make -j"$(nproc)" \
 && make install \
 && cd .. && rm -rf "Python-${PYTHON_VERSION}" "Python-${PYTHON_VERSION}.tgz"
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src/ src/
RUN /opt/python/bin/python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ".[job]"

# ---- runtime: no compiler, no Maven, no sources beyond the job's entry point (for `flink run -py`)
FROM ${FLINK_IMAGE}
COPY --from=python /opt/python /opt/python
COPY --from=python /opt/venv /opt/venv
COPY --from=jars /jars/flink /opt/sensorwatch/jars/flink
COPY src/sensorwatch/jobs/anomaly_job.py /opt/sensorwatch/jobs/anomaly_job.py
COPY docker/sensorwatch.yaml /etc/sensorwatch/sensorwatch.yaml
# Python operators run in the cluster: opt/flink-python joins lib/ (as sensorwatch.app.standalone does);
# named volumes take the ownership of the folder they are mounted on
RUN cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/ \
 && mkdir -p /checkpoints && chown flink:flink /checkpoints
ENV PATH=/opt/venv/bin:$PATH \
    SENSORWATCH_CONFIG=/etc/sensorwatch/sensorwatch.yaml \
    SENSORWATCH_JARS=/opt/sensorwatch/jars \
    PYFLINK_CLIENT_EXECUTABLE=/opt/venv/bin/python
# the official entrypoint (jobmanager | taskmanager | any command) runs as this user
USER flink
