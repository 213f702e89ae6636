#!/bin/sh
echo tock > /app/clock.txt
