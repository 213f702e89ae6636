#!/bin/bash
mkdir -p /app/out && echo "legacy ok" > /app/out/result
