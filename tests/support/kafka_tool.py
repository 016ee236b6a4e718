#!/usr/bin/env python3
"""An independent Kafka client for hookbridge's tests (confluent-kafka, not rdkafka-rs).

  read      --brokers B --topic T [--expect N] [--timeout S] [--to-end]   JSON line per record
  produce   --brokers B --topic T < records.jsonl               {"key","value","headers"} per line (a null header value is written null)
  committed --brokers B --group G --topic T                     {"partition": [committed, high]}
  coordinator --brokers B --group G                             {"id": broker id, "port": port}
"""
import argparse
import base64
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def partitions(client, topic, timeout=10.0):
    md = client.list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return []
    return sorted(t.partitions.keys())


def cmd_read(a):
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": "kafka-tool-reader",
                  "enable.auto.commit": False, "enable.partition.eof": a.to_end})
    parts = partitions(c, a.topic)
    c.assign([TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in parts])
    out = []
    # With --to-end: done once every partition's latest event is "reached the end"
    # (the high watermark of a fetch response, not ListOffsets; see high_watermarks).
    at_end = set()
    deadline = time.time() + a.timeout
    while time.time() < deadline and (a.expect is None or len(out) < a.expect):
        if a.to_end and parts and at_end == set(parts):
            break
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(m.partition())
            continue
        at_end.discard(m.partition())
        out.append({
            "partition": m.partition(), "offset": m.offset(),
            "key": b64(m.key()), "value": b64(m.value()),
            "headers": [[k, b64(v)] for k, v in (m.headers() or [])],
        })
    c.close()
    for r in out:
        print(json.dumps(r))


def cmd_produce(a):
    conf = {"bootstrap.servers": a.brokers, "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "compression.type": a.compression}
    if a.transaction:
        conf["transactional.id"] = f"kafka-tool-{a.topic}"
    p = Producer(conf)
    if a.transaction:
        p.init_transactions(30)
        p.begin_transaction()
    errors = []

    def cb(err, _msg):
        if err is not None:
            errors.append(str(err))

    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        key = r.get("key")
        headers = [(k, None if v is None else v.encode()) for k, v in (r.get("headers") or {}).items()]
        kwargs = {"key": key.encode() if key is not None else None,
                  "value": None if r["value"] is None else r["value"].encode(),
                  "headers": headers, "callback": cb}
        if "partition" in r:
            kwargs["partition"] = r["partition"]
        while True:
            try:
                p.produce(a.topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        n += 1
    left = p.flush(30)
    if a.transaction == "commit":
        p.commit_transaction(30)
    elif a.transaction == "abort":
        p.abort_transaction(30)
    if errors or left:
        print(json.dumps({"errors": errors[:5], "unflushed": left}), file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"produced": n}))


def high_watermarks(brokers, topic, parts, timeout=5.0):
    """High watermarks as seen by a fetch. (Tansu 0.6 answers ListOffsets "latest" with
    the last batch's base offset + 1, so the cached value from a fetch is the reliable one.)"""
    c = Consumer({"bootstrap.servers": brokers, "group.id": "kafka-tool-watermarks",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    pending = set(parts)
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            pending.discard(m.partition())
    out = {}
    for p in parts:
        _low, high = c.get_watermark_offsets(TopicPartition(topic, p), cached=True)
        out[p] = max(high, 0) if p not in pending else 0
    c.close()
    return out


def cmd_committed(a):
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": a.group, "enable.auto.commit": False})
    parts = partitions(c, a.topic)
    tps = c.committed([TopicPartition(a.topic, p) for p in parts], timeout=10)
    c.close()
    highs = high_watermarks(a.brokers, a.topic, parts)
    print(json.dumps({str(tp.partition): [tp.offset, highs[tp.partition]] for tp in tps}))


def cmd_coordinator(a):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": a.brokers})
    deadline = time.time() + 30
    while True:
        try:
            d = admin.describe_consumer_groups([a.group])[a.group].result(timeout=10)
            if d.coordinator is not None:
                print(json.dumps({"id": d.coordinator.id, "port": d.coordinator.port}))
                return
        except Exception as e:  # coordinator loading or moving: ask again
            if time.time() > deadline:
                raise e
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("read")
    r.add_argument("--brokers", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--expect", type=int)
    r.add_argument("--timeout", type=float, default=10.0)
    r.add_argument("--to-end", action="store_true", help="stop once every partition is read to its end")
    p = sub.add_parser("produce")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--compression", default="none", help="the producer's compression.type")
    p.add_argument("--transaction", choices=["commit", "abort"],
                   help="produce every record in one transaction, then commit or abort it")
    c = sub.add_parser("committed")
    c.add_argument("--brokers", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--topic", required=True)
    g = sub.add_parser("coordinator")
    g.add_argument("--brokers", required=True)
    g.add_argument("--group", required=True)
    a = ap.parse_args()
    {"read": cmd_read, "produce": cmd_produce, "committed": cmd_committed,
     "coordinator": cmd_coordinator}[a.cmd](a)


if __name__ == "__main__":
    main()
