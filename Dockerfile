# ddns-server in a container, on Debian's python3 (Debian's security updates).
#
#   scripts/podman-build.sh                 # or: docker build -t ddns-server .
#   docker run -d --name ddns --user ddns -p 53:53/udp -p 53:53/tcp -p 8080:8080 \
#       -v ddns-data:/var/lib/ddns-server ddns-server
#
# The built-in config (/etc/ddns-server/ddns.yaml, from docker/ddns.yaml)
# serves the sample zone dyn.example.test; mount your own folder over
# /etc/ddns-server (-v "$PWD/etc:/etc/ddns-server:ro") with a ddns.yaml whose
# data_dir is /var/lib/ddns-server. Commands use the same config through
# $DDNS_CONFIG:
#   docker exec ddns ddns-server journal log dyn.example.test
# Port 8443 is for an https listener, off in the built-in config.
#
# Only features Debian's buildah/podman understands (no COPY heredocs), so
# `podman build --isolation=chroot` builds it without a daemon (docs/operations.md).

FROM debian:bookworm-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DDNS_CONFIG=/etc/ddns-server/ddns.yaml \
    PATH=/opt/ddns-server/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/ddns-server \
    && useradd --system --home-dir /var/lib/ddns-server --shell /usr/sbin/nologin ddns \
    && install -d -o ddns -g ddns -m 0750 /var/lib/ddns-server \
    && install -d -m 0755 /etc/ddns-server/zones

WORKDIR /usr/src/ddns-server
COPY pyproject.toml README.md ./
COPY ddns_server ./ddns_server
# A build may mount a pip.conf (and the CA bundle it names) at /run/ddns-build
# (scripts/podman-build.sh does, with `podman build -v`): nothing of it stays
# in the image. Without it, pip uses its defaults.
RUN PIP_CONFIG_FILE=/run/ddns-build/pip.conf /opt/ddns-server/bin/pip install . \
    && cd / && rm -rf /usr/src/ddns-server

COPY zones/dyn.example.test.zone /etc/ddns-server/zones/
COPY docker/ddns.yaml /etc/ddns-server/ddns.yaml

WORKDIR /var/lib/ddns-server
VOLUME ["/var/lib/ddns-server"]
EXPOSE 53/udp 53/tcp 8080 8443

# Docker (20.10+) lets unprivileged processes bind ports below 1024 inside a
# container (net.ipv4.ip_unprivileged_port_start=0), so port 53 needs no root.
USER ddns

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["ddns-server"]
CMD ["serve", "-c", "/etc/ddns-server/ddns.yaml"]
