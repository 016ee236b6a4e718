#!/usr/bin/env bash
# Prints the directory of the Apache Kafka broker jars the test suites run on, fetching
# them with Maven the first time (JDK 17+ and Maven needed; the versions are pinned in
# scripts/kafka/pom.xml, the jars' SHA-256 in scripts/kafka/jars.sha256). Cached outside
# the clone, like the cargo target, under a key of both files, so a changed pom fetches
# anew:
#   ${HOOKBRIDGE_KAFKA_CACHE:-~/.cache/hookbridge-kafka}/4.4.0/libs-<key>
# Start a node by hand with scripts/kafka-node.sh; the tests do it for you.
# After changing the pom: delete jars.sha256, run this once (it writes the list of what
# Maven fetched), review and commit the list.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=4.4.0
cache="${HOOKBRIDGE_KAFKA_CACHE:-$HOME/.cache/hookbridge-kafka}/$version"
sums="$here/kafka/jars.sha256"
key="$(cat "$here/kafka/pom.xml" "$sums" 2>/dev/null | sha256sum | cut -c1-12)"
libs="$cache/libs-$key"

# Every jar of the list present with its checksum, and no other jar.
verify() {
  [ -f "$sums" ] || return 0
  (cd "$1" && sha256sum --quiet --strict -c "$sums" >/dev/null 2>&1) || return 1
  [ "$(find "$1" -maxdepth 1 -name '*.jar' | wc -l)" -eq "$(wc -l <"$sums")" ]
}

if [ ! -f "$libs/kafka_2.13-$version.jar" ]; then
  mkdir -p "$cache"
  # A cache from before the key (…/4.4.0/libs) is reused when it matches the list.
  if [ -f "$sums" ] && [ -f "$cache/libs/kafka_2.13-$version.jar" ] && verify "$cache/libs"; then
    ln -sfn libs "$libs"
    echo "$libs"
    exit 0
  fi
  command -v java >/dev/null || { echo "ensure-kafka.sh: java (JDK 17+) is not installed" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "ensure-kafka.sh: mvn (Maven) is not installed" >&2; exit 1; }
  # Into a fresh directory, then renamed: a concurrent run never sees half the jars. It
  # goes away however this script ends before the rename.
  tmp="$(mktemp -d "$cache/libs.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching Apache Kafka $version with Maven (one time, at most 15 min)…" >&2
  # -ntp: no per-file progress, but each artifact is still listed as it is downloaded;
  # -C: a checksum that does not match fails the fetch; a stalled read gives up in 60 s.
  if ! timeout 900 mvn -B -ntp -C -Dmaven.wagon.rto=60000 -f "$here/kafka/pom.xml" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    echo "ensure-kafka.sh: Maven could not fetch Apache Kafka $version (timed out after 15 min, or failed: see above)" >&2
    exit 1
  fi
  if [ ! -f "$sums" ]; then
    (cd "$tmp" && sha256sum *.jar | LC_ALL=C sort -k2) >"$sums"
    echo "ensure-kafka.sh: wrote $sums: review and commit it" >&2
    key="$(cat "$here/kafka/pom.xml" "$sums" | sha256sum | cut -c1-12)"
    libs="$cache/libs-$key"
  elif ! verify "$tmp"; then
    echo "ensure-kafka.sh: the jars Maven fetched do not match $sums:" >&2
    (cd "$tmp" && sha256sum --quiet -c "$sums" >&2) || true
    exit 1
  fi
  if ! mv -T "$tmp" "$libs" 2>/dev/null; then
    [ -f "$libs/kafka_2.13-$version.jar" ] || { echo "ensure-kafka.sh: could not install $libs" >&2; exit 1; }
  fi
fi
echo "$libs"
