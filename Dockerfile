# PlantGuard gateway image: `make image` (docs/install.md).
#   docker run -v plantguard-store:/var/lib/plantguard/store -v plantguard-pki:/var/lib/plantguard/pki \
#     -v ./site.yaml:/etc/plantguard/site.yaml:ro -p 4840:4840 plantguard
# The site file must bind the OPC UA server to the container's interface
# (services.opcua.host: 0.0.0.0) for a published port to reach it, and put the store and
# PKI on the volumes (store.url: /var/lib/plantguard/store/plantguard.db,
# services.opcua.pki_dir: /var/lib/plantguard/pki).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment at the path it runs from ----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/plantguard
WORKDIR /src
COPY pyproject.toml README.md ./
COPY plantguard ./plantguard
COPY opcua_server ./opcua_server
COPY plugins ./plugins
RUN /opt/plantguard/bin/python -m pip install --no-compile . \
    && /opt/plantguard/bin/plantguard --version

# --- runtime: the environment only, as an unprivileged user ----------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="PlantGuard" \
      org.opencontainers.image.description="IoT safety-production monitoring and early-warning gateway"
RUN groupadd --system --gid 10001 plantguard \
    && useradd --system --uid 10001 --gid plantguard --home-dir /var/lib/plantguard \
       --shell /usr/sbin/nologin plantguard \
    && mkdir -p /etc/plantguard /var/lib/plantguard/store /var/lib/plantguard/pki \
    && chown -R plantguard:plantguard /var/lib/plantguard
COPY --from=build /opt/plantguard /opt/plantguard
ENV PATH=/opt/plantguard/bin:$PATH PYTHONUNBUFFERED=1 PLANTGUARD_OPCUA_PORT=4840
USER 10001:10001
WORKDIR /var/lib/plantguard
VOLUME ["/var/lib/plantguard/store", "/var/lib/plantguard/pki"]
EXPOSE 4840/tcp
# Healthy while the OPC UA server accepts TCP connections (PLANTGUARD_OPCUA_PORT: its port).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/plantguard/bin/python", "-c", "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ.get('PLANTGUARD_OPCUA_PORT', '4840'))), timeout=3).close()"]
ENTRYPOINT ["/opt/plantguard/bin/plantguard"]
CMD ["run", "/etc/plantguard/site.yaml"]
