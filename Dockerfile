# rkms container image: a static binary built exactly as `make build` builds it, on a distroless
# base that runs as a non-root user (uid 65532) and holds nothing else (no shell, no package
# manager).
#
#   docker build -t rkms:dev --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm -p 127.0.0.1:8080:8080 -v $PWD/rkms.yaml:/etc/rkms/rkms.yaml:ro rkms:dev
#
# The default command reads /etc/rkms/rkms.yaml; mount your configuration there (see README.md,
# "Docker"). Listeners must bind 0.0.0.0 inside a container to be reachable through -p.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused while go.mod and go.sum do not change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same recipe as on a workstation: `make build` (CGO_ENABLED=0, -trimpath, the version
# stamped with -ldflags). A test (deploy/docker_test.go) keeps this line and the Makefile in step.
RUN make build VERSION=${VERSION} && ./bin/rkms version

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/rkms /usr/local/bin/rkms
USER 65532:65532
# 8080 admin HTTP API (/healthz, /readyz, /metrics, /key), 8081 gRPC key API, 50051 ext_proc.
EXPOSE 8080 8081 50051
ENTRYPOINT ["/usr/local/bin/rkms"]
CMD ["serve", "--config", "/etc/rkms/rkms.yaml"]
