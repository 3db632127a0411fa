# The itsm image: one image, three roles (serve, relay, worker) chosen by the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY projections projections
COPY api api
COPY infra infra
RUN pip install --no-cache-dir .
ENV ITSM_HOST=0.0.0.0 ITSM_DATA_DIR=/var/lib/itsm
ENTRYPOINT ["itsm"]
CMD ["serve"]
