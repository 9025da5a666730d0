# One image for every tokenrelay process: `tokenrelay gateway`, `worker`, `simulate-upstream`.
FROM node:20-bookworm-slim AS web
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY service ./service
COPY worker ./worker
COPY simulator ./simulator
COPY web ./web
COPY --from=web /app/web/node_modules ./web/node_modules
# Editable: the gateway serves web/ from beside the `service` package's source tree.
RUN pip install --no-compile -c constraints.txt -e '.[otel]' && useradd --system --uid 10001 tokenrelay
USER tokenrelay
EXPOSE 8000
ENTRYPOINT ["tokenrelay"]
CMD ["gateway", "--host", "0.0.0.0"]
