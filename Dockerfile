# syntax=docker/dockerfile:1
# Multi-stage build of llm-scheduler: the React dashboard, then the Go
# binary (dashboard embedded, no cgo), then a small runtime image.
#   docker build -t llm-scheduler .
#   docker build --build-arg VERSION=1.2.3 -t llm-scheduler:1.2.3 .

# 1. Dashboard: writes server/dashboard/dist, which the binary embeds.
FROM node:20-bookworm-slim AS dashboard
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
COPY graph/ /src/graph/
RUN npm run build

# 2. Binary.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=dashboard /src/server/dashboard/dist ./server/dashboard/dist
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/llm-scheduler .

# 3. Runtime: no shell, no package manager, non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/llm-scheduler /usr/local/bin/llm-scheduler
WORKDIR /var/lib/llm-scheduler
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llm-scheduler"]
CMD ["serve", "--role", "all"]
