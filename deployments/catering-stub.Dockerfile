# catering-stub: a stand-in Catering backend (POST /catering, GET /received) on STUB_ADDR, :8080 in the container.
# Build from the repository root: docker build -f deployments/catering-stub.Dockerfile .
# (docker compose does this; see docker-compose.yml.)
#
# The module is built on its own, GOWORK=off: go.work lists every module
# (cmd/relayctl, test/e2e, ...), which the image neither needs nor should be
# rebuilt for. The module's replace line points at ../../pkg, so pkg is the
# only other directory copied in, and a go.mod/go.sum that is incomplete
# without the workspace fails here, loudly (make lint checks the same).

# The image's OCI labels (the stub's binary carries no version):
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" -f deployments/catering-stub.Dockerfile .
ARG VERSION=dev
ARG REVISION=unknown

FROM golang:1.26-bookworm AS build
ENV GOWORK=off CGO_ENABLED=0
WORKDIR /src

# Module files first: the download layer is reused until a go.mod or go.sum changes.
COPY pkg/go.mod pkg/go.sum pkg/
COPY services/catering-stub/go.mod services/catering-stub/go.sum services/catering-stub/
WORKDIR /src/services/catering-stub
RUN go mod download

COPY pkg/ /src/pkg/
COPY services/catering-stub/ /src/services/catering-stub/
RUN go build -trimpath -ldflags="-s -w" -o /out/catering-stub .

# static: no libc needed with CGO_ENABLED=0; nonroot: runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION
ARG REVISION
# The repository has no LICENSE file yet: NOASSERTION (SPDX) until it has.
LABEL org.opencontainers.image.title="relay catering-stub" \
      org.opencontainers.image.description="A stand-in Catering backend for relay's demos and tests" \
      org.opencontainers.image.source="https://github.com/railco/relay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="NOASSERTION"
COPY --from=build /out/catering-stub /usr/local/bin/catering-stub
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/catering-stub"]
