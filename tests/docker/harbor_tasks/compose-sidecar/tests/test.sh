#!/bin/sh
if [ "$(cat /app/secret.txt 2>/dev/null)" = "sidecar-secret-4242" ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
