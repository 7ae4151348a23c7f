# syntax=docker/dockerfile:1.7
# seen-worker image: multi-stage, installs exactly what uv.lock pins, runs as non-root.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
# Dependencies first (cached layer), then the project itself; [dashboard] brings [worker] too.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --extra dashboard --no-install-project
COPY cache ./cache
COPY jobs ./jobs
COPY worker ./worker
RUN uv sync --locked --no-dev --extra dashboard --no-editable

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN groupadd --system --gid 10001 seen \
 && useradd --system --uid 10001 --gid seen --home-dir /app --shell /usr/sbin/nologin seen
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=seen:seen settings.toml ./settings.toml
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    SEEN_SETTINGS_FILE=/app/settings.toml
USER seen
# Asks this container's worker at /readyz (python's urllib: no curl in the slim image). With
# [http] off, use: HEALTHCHECK CMD ["seen-worker", "health", "--this-host"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["python", "-m", "worker.http.probe"]
# The worker's /metrics /livez /readyz (http.addr; set SEEN_HTTP_ADDR=0.0.0.0:9464 to reach it
# from outside the container) and the dashboard (`seen-worker dashboard`, dashboard.addr).
EXPOSE 9464 9470
STOPSIGNAL SIGTERM
ENTRYPOINT ["seen-worker"]
CMD ["run"]
