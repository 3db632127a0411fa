# The itsm image: one image, three roles (serve, relay, worker) chosen by the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY projections projections
COPY application application
COPY api api
COPY infra infra
# The inbound JSON Schemas are read from the source tree, so it is installed in place.
COPY schemas schemas
RUN pip install --no-cache-dir -e .
ENV ITSM_HOST=0.0.0.0 ITSM_DATA_DIR=/var/lib/itsm
ENTRYPOINT ["itsm"]
CMD ["serve"]
