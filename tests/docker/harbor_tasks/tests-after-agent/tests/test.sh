#!/bin/sh
[ -f /tests/expected.txt ] || { echo "tests not copied"; echo 0 > /logs/verifier/reward.txt; exit 0; }
if [ "$(cat /app/seen.txt 2>/dev/null)" = "$(cat /tests/expected.txt)" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
