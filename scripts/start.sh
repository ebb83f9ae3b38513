#!/usr/bin/env bash
# Starts the whole stack with Docker Compose (MySQL, Redis, api, workers).
#   scripts/start.sh            # one worker
#   WORKERS=4 scripts/start.sh  # four workers
# The first run creates .env with random passwords and an encryption key.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f .env ]; then
  rand() { head -c 24 /dev/urandom | base64 | tr -d '/+=' ; }
  umask 077
  sed -e "s/^DB_PASSWORD=.*/DB_PASSWORD=$(rand)/" \
      -e "s/^MYSQL_ROOT_PASSWORD=.*/MYSQL_ROOT_PASSWORD=$(rand)/" \
      -e "s/^REDIS_PASSWORD=.*/REDIS_PASSWORD=$(rand)/" \
      -e "s|^ENCRYPTION_KEY=.*|ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64)|" \
      deploy/.env.example > .env
  echo "created .env with random passwords and an encryption key: back it up (losing ENCRYPTION_KEY makes stored provider keys unreadable)"
fi

docker compose up -d --build --scale worker="${WORKERS:-1}"
port=$(grep -E '^API_PORT=' .env | cut -d= -f2)
port=${port:-8080}
echo "waiting for the API on :$port ..."
for _ in $(seq 60); do
  if curl -fsS "http://localhost:$port/api/v1/system/health" >/dev/null 2>&1; then
    echo "up: dashboard and API at http://localhost:$port"
    echo "create an admin key: docker compose run --rm api apikey create --name admin --role admin"
    exit 0
  fi
  sleep 2
done
echo "the API did not become healthy; see: docker compose logs api" >&2
exit 1
