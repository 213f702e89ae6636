#!/bin/bash
set -e
cd ~
echo "done" > ~/result.txt
echo "$(id -u):$(id -g) $TASK_FLAVOUR" > ~/whoami.txt
nohup python3 -m http.server 9000 --directory ~ > /tmp/http.log 2>&1 &
sleep 1
