# One image for every tokenrelay process: `tokenrelay gateway`, `worker`, `simulate-upstream`.
#
# Three stages: `web` installs Monaco from npm, `build` installs tokenrelay and its dependencies
# into a virtualenv, and the final stage copies both onto a slim Python: no compiler, no npm,
# no pip cache, and a non-root user. tests/deploy/test_image.py replays this file without a
# Docker engine (the context after .dockerignore, every COPY, the npm and Python steps in a
# fresh virtualenv, then `tokenrelay gateway --help`): a package that is not copied fails it.

FROM node:20-bookworm-slim AS web
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm AS build
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN python -m venv $VIRTUAL_ENV
# Every package that pyproject.toml's [tool.setuptools.packages.find] includes.
COPY pyproject.toml README.md constraints.txt ./
COPY service ./service
COPY worker ./worker
COPY simulator ./simulator
COPY client ./client
# Pinned as `make install` pins (constraints.txt), with the OpenTelemetry extra. Editable, so
# the sources stay in /app: the gateway serves web/ from beside the `service` package.
RUN pip install --no-compile -c constraints.txt -e '.[otel]'

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 tokenrelay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tokenrelay
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY web ./web
COPY --from=web /app/web/node_modules ./web/node_modules
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# The gateway (8000) and a worker's /metrics (9101, with TOKENRELAY_WORKER_METRICS_HOST=0.0.0.0).
EXPOSE 8000 9101
ENTRYPOINT ["tokenrelay"]
CMD ["gateway", "--host", "0.0.0.0"]
