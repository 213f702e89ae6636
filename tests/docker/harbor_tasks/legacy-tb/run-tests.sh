#!/bin/bash
# Legacy contract: the exit code decides; test files live in $TEST_DIR.
bash "$TEST_DIR/check.sh"
