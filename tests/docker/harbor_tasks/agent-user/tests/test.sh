#!/bin/bash
ok=1
[ "$(cat /home/agent/result.txt 2>/dev/null)" = "done" ] || { echo "no result"; ok=0; }
[ "$(stat -c %u:%g /home/agent/result.txt 2>/dev/null)" = "1000:2000" ] || { echo "bad owner"; ok=0; }
[ "$(cat /home/agent/whoami.txt 2>/dev/null)" = "1000:2000 lifecycle" ] || { echo "bad identity/env"; ok=0; }
python3 - <<'PY' || ok=0
import urllib.request
body = urllib.request.urlopen("http://127.0.0.1:9000/result.txt", timeout=5).read()
assert body.strip() == b"done", body
print("background server still up")
PY
echo $ok > /logs/verifier/reward.txt
