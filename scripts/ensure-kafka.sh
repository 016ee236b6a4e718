#!/usr/bin/env bash
# Prints the directory of the Apache Kafka broker jars the test suites run on, fetching
# them with Maven the first time (JDK 17+ and Maven needed; the versions are pinned in
# scripts/kafka/pom.xml). Cached outside the clone, like the cargo target:
#   ${HOOKBRIDGE_KAFKA_CACHE:-~/.cache/hookbridge-kafka}/4.4.0/libs
# Start a node by hand with scripts/kafka-node.sh; the tests do it for you.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=4.4.0
cache="${HOOKBRIDGE_KAFKA_CACHE:-$HOME/.cache/hookbridge-kafka}/$version"
libs="$cache/libs"
if [ ! -f "$libs/kafka_2.13-$version.jar" ]; then
  command -v java >/dev/null || { echo "ensure-kafka.sh: java (JDK 17+) is not installed" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "ensure-kafka.sh: mvn (Maven) is not installed" >&2; exit 1; }
  mkdir -p "$cache"
  # Into a fresh directory, then renamed: a concurrent run never sees half the jars.
  tmp="$(mktemp -d "$cache/libs.XXXXXX")"
  echo "fetching Apache Kafka $version with Maven (one time)…" >&2
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >&2
  if ! mv -T "$tmp" "$libs" 2>/dev/null; then
    rm -rf "$tmp"
    [ -f "$libs/kafka_2.13-$version.jar" ] || { echo "ensure-kafka.sh: could not install $libs" >&2; exit 1; }
  fi
fi
echo "$libs"
