#!/usr/bin/env bash
# Validates the deployment files without a cluster or a Docker engine; exits non-zero on any
# failure. Usage: bash scripts/validate-deploy.sh
#   1. helm/hookbridge: scripts/validate_helm.py -- helm lint and render with real Helm (the
#      Helm v4 Go SDK inside PyPI's helm-python-sdk; no helm binary) for several value sets,
#      then assertions on the manifests (see that script's docstring).
#   2. docker-compose.yml: `docker-compose config -q`, the compose connectors in sync with
#      connectors/ (only the receiver's URL differs), the demo receiver patch still applies,
#      and `hookbridge check` on deploy/compose/ when a built binary is around.
#   3. Dockerfile: every COPY source exists and .dockerignore does not exclude it.
# Tools are installed on first use and cached: a virtualenv (helm-python-sdk, PyYAML,
# kubernetes-validate) in ${XDG_CACHE_HOME:-~/.cache}/hookbridge/deploy-venv, and Debian's
# docker-compose package through apt-get when no docker-compose is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${HOOKBRIDGE_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hookbridge/deploy-venv}
REQUIREMENTS="helm-python-sdk==0.2.2 PyYAML==6.0.3 kubernetes-validate==1.37.0"
failures=()

section() { printf '\n== %s\n' "$*"; }

# --- tools -------------------------------------------------------------------------------
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "validate-deploy: needs Python >= 3.11 as \$PYTHON or python3 (tomllib)" >&2
  exit 1
fi
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ] \
   || ! "$VENV/bin/python" -c 'import helm_python, yaml, kubernetes_validate' >/dev/null 2>&1; then
  echo "installing $REQUIREMENTS into $VENV (cached for later runs)…"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  # shellcheck disable=SC2086 # word splitting of the requirement list is intended
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $REQUIREMENTS
  echo "$REQUIREMENTS" >"$VENV/.requirements"
fi
VPY="$VENV/bin/python"

compose=()
if command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v apt-get >/dev/null 2>&1; then
  echo "installing docker-compose (Debian package)…"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq docker-compose >/dev/null
  compose=(docker-compose)
fi

# --- 1. Helm chart -----------------------------------------------------------------------
section "helm/hookbridge (scripts/validate_helm.py)"
"$VPY" scripts/validate_helm.py || failures+=("helm chart")

# --- 2. docker compose -------------------------------------------------------------------
section "docker-compose.yml"
if [ ${#compose[@]} -eq 0 ]; then
  echo "SKIPPED: docker-compose.yml not validated: no docker-compose, no 'docker compose' and no apt-get to install it"
elif "${compose[@]}" -f docker-compose.yml config -q; then
  echo "ok: ${compose[*]} -f docker-compose.yml config -q"
  "${compose[@]}" -f docker-compose.yml config >"${TMPDIR:-/tmp}/hookbridge-compose.$$.yml"
  # Checks on the resolved file: services, mounts, the connectors copy, `hookbridge check`.
  COMPOSE_RESOLVED="${TMPDIR:-/tmp}/hookbridge-compose.$$.yml" "$VPY" - <<'PYEOF' || failures+=("docker-compose.yml")
import os, re, subprocess, sys
from pathlib import Path
import yaml

resolved = Path(os.environ["COMPOSE_RESOLVED"])
cfg = yaml.safe_load(resolved.read_text())
resolved.unlink()
bad = []
def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        bad.append(what)

services = cfg.get("services", {})
check({"kafka", "hookbridge", "receiver"} <= set(services), "services kafka, hookbridge, receiver")
hb = services.get("hookbridge", {})
env = hb.get("environment", {})
check(env.get("HOOKBRIDGE__KAFKA__BROKERS") == "kafka:9092", "hookbridge reaches kafka:9092")
mounts = {}
for v in hb.get("volumes", []):
    src, dst = (v["source"], v["target"]) if isinstance(v, dict) else v.split(":")[:2]
    mounts[dst] = Path(src)
toml_src = mounts.get("/etc/hookbridge/hookbridge.toml")
conn_src = mounts.get("/etc/hookbridge/connectors")
check(toml_src is not None and toml_src.is_file(), "hookbridge.toml mounted from a file that exists")
check(conn_src is not None and conn_src.is_dir(), "connectors mounted from a directory that exists")
check(all(str(v).endswith(":ro") or (isinstance(v, dict) and v.get("read_only")) for v in hb.get("volumes", [])),
      "hookbridge's mounts are read-only")
deps = hb.get("depends_on", {})
check(isinstance(deps, dict) and deps.get("kafka", {}).get("condition") == "service_healthy",
      "hookbridge waits for a healthy kafka")
check("healthcheck" in services.get("kafka", {}), "kafka has a healthcheck")

# deploy/compose/connectors mirrors connectors/, only the receiver's address differs.
repo, comp = Path("connectors"), Path("deploy/compose/connectors")
names = sorted(p.name for p in repo.glob("*.toml"))
check(names == sorted(p.name for p in comp.glob("*.toml")), f"deploy/compose/connectors has {names}")
for n in names:
    want = (repo / n).read_text().replace("http://127.0.0.1:8099/hook", "http://receiver:8099/hook")
    if (comp / n).exists():
        check((comp / n).read_text() == want, f"deploy/compose/connectors/{n} matches connectors/{n}")

# The receiver's command patches the bind address of scripts/demo_receiver.py with sed.
cmd = " ".join(services.get("receiver", {}).get("command") or [])
m = re.search(r"sed '([^']+)'", cmd)
patched = subprocess.run(["sed", m.group(1), "scripts/demo_receiver.py"], capture_output=True, text=True).stdout if m else ""
check('"0.0.0.0", PORT' in patched, "the receiver's sed still makes demo_receiver.py bind 0.0.0.0")

# `hookbridge check` on the compose configuration, with the compose environment.
target = Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "hookbridge-target")
bins = [Path(os.environ["HOOKBRIDGE_BIN"])] if os.environ.get("HOOKBRIDGE_BIN") else [
    p for p in (target / "release/hookbridge", target / "debug/hookbridge",
                Path("target/release/hookbridge"), Path("target/debug/hookbridge")) if p.is_file()]
if bins and toml_src and conn_src:
    binary = max(bins, key=lambda p: p.stat().st_mtime)
    import tempfile, shutil
    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp)
        shutil.copy(toml_src, etc / "hookbridge.toml")
        shutil.copytree(conn_src, etc / "connectors")
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE__")}
        run_env.update({k: str(v) for k, v in env.items()})
        p = subprocess.run([str(binary), "check", "--config", str(etc / "hookbridge.toml")],
                           env=run_env, capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, f"`hookbridge check` accepts deploy/compose/ ({binary})")
        if p.returncode:
            print(p.stderr or p.stdout)
else:
    print("note: `hookbridge check` of deploy/compose/ skipped: no built binary (set HOOKBRIDGE_BIN)")
sys.exit(1 if bad else 0)
PYEOF
else
  failures+=("docker-compose.yml (config -q)")
fi

# --- 3. Dockerfile -----------------------------------------------------------------------
section "Dockerfile"
dockerfile_ok=1
while read -r src; do
  if [ ! -e "$src" ]; then
    echo "FAIL: Dockerfile copies $src, which does not exist"; dockerfile_ok=0
  elif grep -qxE "/?${src%/}/?" .dockerignore; then
    echo "FAIL: Dockerfile copies $src, which .dockerignore excludes"; dockerfile_ok=0
  fi
done < <(awk 'toupper($1) == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) print $i }' Dockerfile)
grep -q '^ENTRYPOINT \["hookbridge"\]' Dockerfile || { echo "FAIL: ENTRYPOINT is not hookbridge"; dockerfile_ok=0; }
grep -q '^USER [1-9]' Dockerfile || { echo "FAIL: the image does not switch to a numeric non-root USER"; dockerfile_ok=0; }
grep -q '^EXPOSE 8080 9090' Dockerfile || { echo "FAIL: EXPOSE 8080 9090 missing"; dockerfile_ok=0; }
if [ "$dockerfile_ok" = 1 ]; then
  echo "ok: COPY sources exist and are in the build context; non-root USER, ENTRYPOINT, EXPOSE"
  echo "note: the image itself is not built here (no Docker engine)"
else
  failures+=("Dockerfile")
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "validate-deploy: FAILED: ${failures[*]}" >&2
  exit 1
fi
echo "validate-deploy: ok"
