#!/bin/sh
ls /sys/class/net > /app/ifaces.txt
