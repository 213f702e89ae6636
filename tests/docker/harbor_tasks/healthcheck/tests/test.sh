#!/bin/sh
if [ "$(cat /app/ready-copy.txt 2>/dev/null)" = "ready" ]; then r=1; else r=0; fi
echo $r > /logs/verifier/reward.txt
