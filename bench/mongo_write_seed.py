#!/usr/bin/python3
"""The seed's way of storing results, for bench/mongo_write.sh: one pymongo call per document
(Debian's python3-pymongo, run by /usr/bin/python3), against the same server and with the same
documents as the engine's bulk writer.

    mongo_write_seed.py make FILE N BYTES PER_OBJECT   write N documents of about BYTES bytes as
                                                       JSON lines, PER_OBJECT per object, with
                                                       the engine's _ids and lineage
    mongo_write_seed.py insert_one URI DB COLL FILE    insert_one per document (the seed's loop)
    mongo_write_seed.py update_one URI DB COLL FILE    update_one({_id}, {$set: doc}, upsert=True)
                                                       per document: the engine's semantics
                                                       (idempotent), one round trip each
Each loop drops the collection first and prints one JSON line: {"method", "docs", "seconds",
"docs_per_s", "cpu_s"} (cpu_s: this process's own CPU time).
"""
import hashlib
import json
import random
import sys
import time

WORDS = ("engine event pipeline handler lane worker plugin chunk text document river stone garden "
         "window morning signal harbor lantern meadow copper orbit violet summit quiet rapid amber").split()


def field(s):
    b = s.encode()
    return len(b).to_bytes(8, "big") + b


def docid(pipeline, bucket, key, version, i):
    """core/util/docid.h: the first 12 bytes of SHA-256 over the length-prefixed fields."""
    h = hashlib.sha256(field(pipeline) + field(bucket) + field(key) + field(version) + i.to_bytes(8, "big"))
    return h.hexdigest()[:24]


def make(path, n, size, per_object):
    r = random.Random(2)
    with open(path, "w") as f:
        for j in range(n):
            obj, i = divmod(j, per_object)
            key = "bench/object-%05d.txt" % obj
            text = []
            while sum(len(w) + 1 for w in text) < size - 700:  # the rest is metadata and lineage
                text.append(r.choice(WORDS))
            doc = {
                "_id": docid("bench", "media", key, "v1", i),
                "text": " ".join(text),
                "embedding": [round(r.uniform(-1, 1), 4) for _ in range(16)],
                "metadata": {"type": "bench", "chunk_index": i, "char_start": i * 1000, "char_stop": i * 1000 + 999},
                "_lineage": {
                    "pipeline": "bench", "pipeline_version": "0123456789ab",
                    "source": {"type": "kafka", "topic": "events", "partition": obj % 4, "offset": obj},
                    "object": {"bucket": "media", "key": key, "version": "v1", "etag": "e%05d" % obj,
                               "size": 123456, "content_type": "text/plain"},
                    "plugins": {"text": "1.0.0"}, "endpoints": [], "event_time": "2024-05-01T12:00:00.000Z",
                    "index": i, "count": per_object,
                },
            }
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")


def load(path):
    import bson
    docs = []
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            d["_id"] = bson.ObjectId(d["_id"])
            docs.append(d)
    return docs


def loop(method, uri, db, coll_name, path):
    import pymongo
    docs = load(path)
    coll = pymongo.MongoClient(uri)[db][coll_name]
    coll.drop()
    t0, c0 = time.monotonic(), time.process_time()
    if method == "insert_one":
        for d in docs:
            coll.insert_one(d)
    else:
        for d in docs:
            body = {k: v for k, v in d.items() if k != "_id"}
            coll.update_one({"_id": d["_id"]}, {"$set": body}, upsert=True)
    secs, cpu = time.monotonic() - t0, time.process_time() - c0
    stored = coll.count_documents({})
    if stored != len(docs):
        sys.exit("%s: %d documents stored, expected %d" % (method, stored, len(docs)))
    print(json.dumps({"method": method, "docs": len(docs), "seconds": round(secs, 3),
                      "docs_per_s": round(len(docs) / secs, 1), "cpu_s": round(cpu, 3)}))


def main():
    mode = sys.argv[1]
    if mode == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif mode in ("insert_one", "update_one"):
        loop(mode, *sys.argv[2:6])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
