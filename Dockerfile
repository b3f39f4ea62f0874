# The same image as `make image` (hack/image), for machines with a Docker engine: a static manager on an empty
# base with /etc/passwd and /etc/group (nonroot 65532), Mozilla's CA roots and Go's time zone database.
# `make image` builds it without an engine; docs/deploy.md says why and what is in it.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace
# Module downloads are cached in their own layers, re-run only when a go.mod or go.sum changes.
# api/ is its own module, which go.mod replaces with ./api: its go.mod must be there before the download.
COPY go.mod go.sum ./
COPY api/go.mod api/go.sum api/
RUN go mod download
COPY hack/image/go.mod hack/image/go.sum hack/image/
RUN cd hack/image && go mod download
COPY cmd/ cmd/
COPY api/ api/
COPY internal/ internal/
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w" -o /rootfs/manager ./cmd
COPY hack/image/main.go hack/image/
RUN cd hack/image && go run . -rootfs /rootfs -zoneinfo "$(go env GOROOT)/lib/time/zoneinfo.zip"

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
COPY --from=builder /rootfs/ /
ENV ZONEINFO=/usr/share/zoneinfo.zip
LABEL org.opencontainers.image.source=https://github.com/asynctask-operator/asynctask-operator \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.title=asynctask-operator
WORKDIR /
USER 65532:65532
ENTRYPOINT ["/manager"]
