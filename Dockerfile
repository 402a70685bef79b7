# The adapter as a container: the Procfile's lines, on any container platform.
#   docker build -t genagent-adapter .
#   docker run -e PORT=8000 -p 8000:8000 --env-file adapter.env genagent-adapter web
#   docker run --env-file adapter.env genagent-adapter worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# The locked dependencies first, so code changes reuse this layer.
COPY requirements.txt ./
RUN grep -v '^\.$' requirements.txt > /tmp/dependencies.txt \
    && pip install -r /tmp/dependencies.txt \
    && rm /tmp/dependencies.txt

COPY pyproject.toml README.md Procfile ./
COPY adapter ./adapter
COPY bin ./bin
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 adapter \
    && chown adapter /app

USER adapter
EXPOSE 8000
ENTRYPOINT ["bin/procfile"]
CMD ["web"]
