#!/bin/sh
awk '{s+=$1} END {print s}' /data/numbers.txt > /data/sum.txt
sort -n /data/numbers.txt | tail -n 1 > /data/max.txt
