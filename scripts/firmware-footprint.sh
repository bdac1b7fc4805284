#!/usr/bin/env bash
# Regenerates the footprint table of firmware/README.md (between its firmware-footprint
# markers) from fresh builds: `scripts/firmware-footprint.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
table=$(cargo run -q -p llama2-tests --bin firmware-footprint)
python3 - "$table" <<'PY'
import re, sys
path = "firmware/README.md"
text = open(path, encoding="utf-8").read()
begin, end = "<!-- firmware-footprint:begin -->", "<!-- firmware-footprint:end -->"
new = re.sub(re.escape(begin) + ".*?" + re.escape(end),
             lambda _: begin + "\n" + sys.argv[1] + "\n" + end, text, flags=re.S)
open(path, "w", encoding="utf-8").write(new)
PY
echo "firmware/README.md: footprint table updated"
