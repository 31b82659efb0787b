# dicomseal: a static binary on a distroless, non-root base.
#   docker build -t dicomseal .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# modernc.org/sqlite is pure Go: no cgo, a fully static binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dicomseal ./cmd/dicomseal \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dicomseal /usr/local/bin/dicomseal
# The data directory (keys, spool, embedded ledger) belongs to the non-root user.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/dicomseal", "health", "--url", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/dicomseal"]
CMD ["serve", "--addr", "0.0.0.0:8080", "--data-dir", "/data"]
