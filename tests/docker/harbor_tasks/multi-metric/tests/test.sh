#!/bin/sh
sum=0; max=0
[ "$(cat /data/sum.txt 2>/dev/null)" = "130" ] && sum=1
[ "$(cat /data/max.txt 2>/dev/null)" = "92" ] && max=1
reward=0
[ "$sum" = 1 ] && [ "$max" = 1 ] && reward=1
echo "sum=$sum max=$max"
printf '{"reward": %s, "sum_correct": %s, "max_correct": %s, "files_checked": 2}\n' \
  "$reward" "$sum" "$max" > /logs/verifier/reward.json
