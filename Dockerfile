# The itsm image: one image, every role (serve, relay, worker, inbound, sla scheduler, keys)
# chosen by the command: `docker run IMAGE serve`, `docker run IMAGE keys create ...`.
FROM python:3.11-slim

# libpq: psycopg (from eventsourcing[postgres]) is its pure-Python build, which loads the
# system's libpq to reach PostgreSQL; the slim image has none. Debian's package gets the
# distribution's security updates with each rebuild.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

# Not root: a fixed uid/gid, so that a volume's owner is known and runAsNonRoot can check it.
RUN groupadd --system --gid 10001 itsm \
    && useradd --system --uid 10001 --gid itsm --no-create-home --shell /usr/sbin/nologin itsm \
    && install -d -o itsm -g itsm -m 0700 /var/lib/itsm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY projections projections
COPY application application
COPY api api
COPY infra infra
# The inbound JSON Schemas are read from the source tree, so the project is installed in
# place; the code stays root's and read-only to the itsm user.
COPY schemas schemas
RUN pip install -e . \
    && python -c "import psycopg; print('libpq', psycopg.pq.version(), psycopg.pq.__impl__)"

USER itsm:itsm
# The data directory (SQLite files of the embedded mode, the readiness probe's scratch file):
# 0700, the itsm user's; a named volume mounted here starts with the same owner and mode.
ENV ITSM_HOST=0.0.0.0 ITSM_PORT=8000 ITSM_DATA_DIR=/var/lib/itsm
VOLUME ["/var/lib/itsm"]
EXPOSE 8000
ENTRYPOINT ["itsm"]
CMD ["serve"]
