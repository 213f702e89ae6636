#!/bin/bash
[ "$(cat /app/out/result 2>/dev/null)" = "legacy ok" ]
