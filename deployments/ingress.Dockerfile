# ingress: HTTP API on :8290 that stores each registration in RabbitMQ.
# Build from the repository root: docker build -f deployments/ingress.Dockerfile .
# (docker compose does this; see docker-compose.yml.)
#
# The module is built on its own, GOWORK=off: go.work lists every module
# (cmd/relayctl, test/e2e, ...), which the image neither needs nor should be
# rebuilt for. The module's replace line points at ../../pkg, so pkg is the
# only other directory copied in, and a go.mod/go.sum that is incomplete
# without the workspace fails here, loudly (make lint checks the same).

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
RUN go build -trimpath -ldflags="-s -w" -o /out/ingress .

# static: no libc needed with CGO_ENABLED=0; nonroot: runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingress /usr/local/bin/ingress
EXPOSE 8290
ENTRYPOINT ["/usr/local/bin/ingress"]
