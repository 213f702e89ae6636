#!/bin/sh
# A child that outlives the script must not hold up the verifier.
sleep 600 &
if [ "$(cat /app/clock.txt 2>/dev/null)" = "$EXPECTED" ] && [ "$MODE" = strict ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
exit 0
