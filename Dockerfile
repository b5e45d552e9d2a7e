# aloudata-can-exporter's container image.
#
#   docker build -t ghcr.io/aloudata/aloudata-can-exporter:0.1.0 .
#   docker run --rm -p 9873:9873 ghcr.io/aloudata/aloudata-can-exporter:0.1.0 --demo
#   docker run --rm -p 9873:9873 --read-only --tmpfs /tmp \
#     -v "$PWD/exporter.yml:/etc/aloudata-can-exporter/exporter.yml:ro" \
#     -v "$PWD/can-apikey:/var/run/secrets/aloudata-can/can-apikey:ro" \
#     ghcr.io/aloudata/aloudata-can-exporter:0.1.0
#
# Flags given to `docker run` are appended to the entrypoint's; a later --config.file wins.
# The image runs as 65532:65532 and writes nothing outside /tmp, so it runs with a read-only
# root filesystem (deploy/kubernetes/sharded/statefulset.yaml).

# Build stage: wheels for the exporter and every dependency, binary wheels only, so the slim
# base needs no compiler and no dependency's build code runs.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY exporter ./exporter
RUN python -m pip wheel --no-cache-dir --only-binary=:all: --wheel-dir /wheels .

# Runtime stage: the same base, the wheels installed without an index and without a copy of
# them left in any layer (a bind mount of the build stage).
FROM python:3.11.14-slim-bookworm

# Keep in step with exporter.__version__ (tests/deploy/test_dockerfile.py checks it).
ARG VERSION=0.1.0

LABEL org.opencontainers.image.title="aloudata-can-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the freshness of Aloudata CAN accelerated (materialized) data" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/aloudata/aloudata-can-exporter" \
      org.opencontainers.image.url="https://github.com/aloudata/aloudata-can-exporter" \
      org.opencontainers.image.documentation="https://github.com/aloudata/aloudata-can-exporter/blob/main/README.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Aloudata" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

# The official image ships no bytecode: compile the standard library and the installed
# packages now (hash-checked, so rewritten file times cannot make them stale), since a
# read-only root cannot cache them and every start, health check included, would recompile.
# setuptools and wheel are build tools the exporter never imports. -l (--no-log-init) keeps a
# high UID from growing /var/log/lastlog.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links=/wheels --no-compile \
        --root-user-action=ignore /wheels/aloudata_can_exporter-*.whl \
    && python -m pip uninstall --yes --root-user-action=ignore setuptools wheel \
    && python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash \
        /usr/local/lib/python3.11 \
    && groupadd --system --gid 65532 nonroot \
    && useradd --system --no-log-init --uid 65532 --gid 65532 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin nonroot

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532

EXPOSE 9873

# /healthz answers 200 while the process runs. Plain HTTP on the default port: with
# --web.config.file (TLS or basic auth) or another --web.listen-address, override it
# (`docker run --health-cmd ...`) or turn it off (`--no-healthcheck`). The empty ProxyHandler
# keeps an HTTP_PROXY in the environment from routing 127.0.0.1 through a proxy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:9873/healthz', timeout=3)"]

ENTRYPOINT ["aloudata-can-exporter", "--config.file=/etc/aloudata-can-exporter/exporter.yml"]
