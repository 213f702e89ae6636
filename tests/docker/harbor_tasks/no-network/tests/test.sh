#!/bin/sh
# The agent saw only loopback; the verifier (public) sees more than that.
if [ "$(cat /app/ifaces.txt 2>/dev/null)" = "lo" ] && [ "$(ls /sys/class/net | wc -l)" -gt 1 ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
