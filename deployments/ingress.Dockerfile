# ingress: HTTP API on :8290 that stores each registration in RabbitMQ.
# Build from the repository root: docker build -f deployments/ingress.Dockerfile .
# (docker compose does this; see docker-compose.yml.)
#
# The module is built on its own, GOWORK=off: go.work lists every module
# (cmd/relayctl, test/e2e, ...), which the image neither needs nor should be
# rebuilt for. The module's replace line points at ../../pkg, so pkg is the
# only other directory copied in, and a go.mod/go.sum that is incomplete
# without the workspace fails here, loudly (make lint checks the same).

# Stamped into the binary (main.version: the start-up log line and
# relay_build_info) and the image's OCI labels:
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" -f deployments/ingress.Dockerfile .
ARG VERSION=dev
ARG REVISION=unknown

FROM golang:1.26-bookworm AS build
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src

# Module files first: the download layer is reused until a go.mod or go.sum changes.
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/ingress/go.mod services/ingress/go.sum services/ingress/
WORKDIR /src/services/ingress
RUN go mod download

COPY pkg/ /src/pkg/
COPY services/ingress/ /src/services/ingress/
# Declared here, not above: a new VERSION rebuilds from this step only.
ARG VERSION
RUN go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/ingress .

# static: no libc needed with CGO_ENABLED=0; nonroot: runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION
ARG REVISION
# The repository has no LICENSE file yet: NOASSERTION (SPDX) until it has.
LABEL org.opencontainers.image.title="relay ingress" \
      org.opencontainers.image.description="relay's HTTP API: stores each catering registration in RabbitMQ before answering 202" \
      org.opencontainers.image.source="https://github.com/railco/relay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="NOASSERTION"
COPY --from=build /out/ingress /usr/local/bin/ingress
EXPOSE 8290
ENTRYPOINT ["/usr/local/bin/ingress"]
