#!/bin/sh
cp /tmp/ready /app/ready-copy.txt
