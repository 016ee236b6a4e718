#!/usr/bin/env bash
# Runs one Apache Kafka KRaft node for tests until WATCH_PID exits:
#   scripts/kafka-node.sh LIBS DIR WATCH_PID
# DIR holds server.properties (log.dirs inside DIR) and cluster-id; the first start
# formats the storage. The node is killed -9 when WATCH_PID is gone, so a test binary
# that exits (or is killed) never leaves a broker behind; DIR is then removed unless
# HOOKBRIDGE_KEEP_KAFKA is set. DIR/pid holds the JVM's pid: kill -9 it (and this
# script) to kill the node.
set -u
libs=$1 dir=$2 watch=$3
# JAVA_HOME's java when it is set, else the first on PATH; Apache Kafka 4 needs 17+.
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
command -v "$java" >/dev/null || { echo "kafka-node.sh: no java (JDK 17+) at ${JAVA_HOME:-PATH}" >&2; exit 1; }
major="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  echo "kafka-node.sh: $java is Java ${major:-of unknown version}; Apache Kafka 4 needs 17 or later (set JAVA_HOME)" >&2
  exit 1
fi
# Small heap and serial GC: the suites run on 2 shared cores beside hookbridge and the
# receivers; C1 only, as a test broker starts far more often than it runs long.
jvm=(-Xms64m -Xmx${HOOKBRIDGE_KAFKA_HEAP:-384m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1
  -Djava.awt.headless=true -Dlog4j2.configurationFile="$(dirname "$0")/kafka/log4j2.properties")
if [ ! -f "$dir/formatted" ]; then
  "$java" -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$libs/*" kafka.tools.StorageTool \
    format --ignore-formatted --cluster-id "$(cat "$dir/cluster-id")" \
    --config "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
  touch "$dir/formatted"
fi
"$java" "${jvm[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/broker.log" 2>&1 &
node=$!
echo "$node" >"$dir/pid"
while kill -0 "$node" 2>/dev/null; do
  if ! kill -0 "$watch" 2>/dev/null; then
    kill -9 "$node" 2>/dev/null
    wait "$node" 2>/dev/null
    [ -n "${HOOKBRIDGE_KEEP_KAFKA:-}" ] || { rm -rf "$dir"; rmdir "$(dirname "$dir")" 2>/dev/null; }
    exit 0
  fi
  sleep 1
done
wait "$node"
