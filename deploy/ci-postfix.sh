#!/usr/bin/env bash
# CI: the Postfix comparison benchmark's end-to-end test (test/system/vs-postfix.test.ts). Installs Debian's
# postfix without configuring the system's instance ("No configuration"), then runs the test. Needs root.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -x /usr/sbin/smtp-source ]; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
cd "$REPO"
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/cli.js ] || npm run build
RELAY_POSTFIX_TEST=1 npx vitest run test/system/vs-postfix.test.ts "$@"
