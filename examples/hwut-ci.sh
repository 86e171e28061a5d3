#!/usr/bin/env bash
# HWUT in a CI job: a throw-away server on the runner, the firmware judged by its
# console output, a JUnit report for the CI server. Both example pipelines
# (github-actions.yml, gitlab-ci.yml) run this script as it is, after `pip install`.
#
#   FIRMWARE   the image to run (default: the hello firmware HWUT ships)
#   BOARD      default nucleo-f303re
#   REPORT     the JUnit file (default hwut-report.xml)
#
# The exit status is hwut submit's: 0 passed, 41 failed, 44 canceled, 45 error,
# 46 gave up waiting, 64 usage error.
set -euo pipefail

FIRMWARE=${FIRMWARE:-$(python -c 'import hwut.cli; print(hwut.cli.DEMO_FIRMWARE)')}
BOARD=${BOARD:-nucleo-f303re}
REPORT=${REPORT:-hwut-report.xml}
WORK=${HWUT_WORK:-$PWD/.hwut}
mkdir -p "$WORK"
# the server writes its URL and first admin token here; hwut submit reads them
export HWUT_CLIENT_CONFIG="$WORK/client.toml"
rm -f "$HWUT_CLIENT_CONFIG"

hwut serve --data-dir "$WORK/data" --port 0 > "$WORK/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    [ -s "$HWUT_CLIENT_CONFIG" ] && hwut boards > /dev/null 2>&1 && break
    sleep 0.1
done

hwut submit "$FIRMWARE" --board "$BOARD" --limit 10 \
    --expect "SYSCLK=72000000" --expect-regex '^count=3$' --ordered \
    --fail PANIC --fail-regex 'ASSERT.*failed' \
    --junit "$REPORT" --timeout 300
