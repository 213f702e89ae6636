#!/bin/sh
if [ -e /tests ]; then echo present > /app/seen.txt; else echo absent > /app/seen.txt; fi
# A stale reward written during the agent phase must be discarded before the tests run.
echo '{"reward": 0.25}' > /logs/verifier/reward.json 2>/dev/null || true
