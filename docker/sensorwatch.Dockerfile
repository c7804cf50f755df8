# syntax=docker/dockerfile:1
# The sensorwatch command line: topic initialisation, trainer, simulator, anomaly consumer.
#   docker build -f docker/sensorwatch.Dockerfile -t sensorwatch .
# Python 3.12 is one apache-flink 2.2 and tensorflow 2.20 both support.
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

# ---- build: a virtualenv with the training and serving extras (TensorFlow, scikit-learn)
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src/ src/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ".[train,serving]"

# ---- runtime: the virtualenv only, a non-root user
FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin sensorwatch \
 && mkdir -p /models && chown sensorwatch:sensorwatch /models
COPY --from=build /opt/venv /opt/venv
COPY docker/sensorwatch.yaml /etc/sensorwatch/sensorwatch.yaml
ENV PATH=/opt/venv/bin:$PATH \
    SENSORWATCH_CONFIG=/etc/sensorwatch/sensorwatch.yaml \
    PYTHONUNBUFFERED=1
USER sensorwatch
WORKDIR /home/sensorwatch
ENTRYPOINT ["sensorwatch"]
CMD ["--help"]
