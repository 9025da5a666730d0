#!/bin/sh
# Installs the resumable-stream peer's packages exactly as locked (npm ci), once.
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "resumable-stream: needs Node.js and npm" >&2
  exit 1
fi
stamp=node_modules/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null
touch "$stamp"
