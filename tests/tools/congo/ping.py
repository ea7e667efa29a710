#!/usr/bin/env python3
"""Readiness probe for the MongoDB stand-in: sends a real `ping` command (OP_MSG) and exits 0
only when the server answers {ok: 1}. Standard library only, so it runs before anything else
is installed.

    ping.py HOST PORT [TIMEOUT_S]
"""
import socket
import struct
import sys

OP_MSG = 2013


def bson_doc(items):
    """A tiny BSON encoder for the ping: int32 and string values only."""
    body = b""
    for key, value in items:
        k = key.encode() + b"\0"
        if isinstance(value, int):
            body += b"\x10" + k + struct.pack("<i", value)
        else:
            v = value.encode() + b"\0"
            body += b"\x02" + k + struct.pack("<i", len(v)) + v
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def ok_field(doc):
    """Value of the top-level "ok" field of a BSON reply (double, int32 or int64), or None."""
    pos, end = 4, len(doc) - 1
    while pos < end:
        t = doc[pos]
        name_end = doc.index(b"\0", pos + 1)
        name = doc[pos + 1:name_end]
        pos = name_end + 1
        sizes = {0x01: 8, 0x10: 4, 0x12: 8, 0x08: 1, 0x09: 8, 0x11: 8, 0x07: 12, 0x0A: 0}
        if name == b"ok":
            if t == 0x01:
                return struct.unpack_from("<d", doc, pos)[0]
            if t == 0x10:
                return struct.unpack_from("<i", doc, pos)[0]
            if t == 0x12:
                return struct.unpack_from("<q", doc, pos)[0]
            return None
        if t in sizes:
            pos += sizes[t]
        elif t in (0x02, 0x0D, 0x0E):
            pos += 4 + struct.unpack_from("<i", doc, pos)[0]
        elif t in (0x03, 0x04):
            pos += struct.unpack_from("<i", doc, pos)[0]
        elif t == 0x05:
            pos += 5 + struct.unpack_from("<i", doc, pos)[0]
        else:
            return None
    return None


def ping(host, port, timeout):
    body = bson_doc([("ping", 1), ("$db", "admin")])
    payload = struct.pack("<I", 0) + b"\0" + body
    msg = struct.pack("<iiii", 16 + len(payload), 1, 0, OP_MSG) + payload
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(msg)
        data = b""
        while len(data) < 4 or len(data) < struct.unpack_from("<i", data)[0]:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the reply")
            data += chunk
    _, _, _, opcode = struct.unpack_from("<iiii", data)
    if opcode != OP_MSG or data[20] != 0:
        raise ValueError("unexpected reply (opcode %d)" % opcode)
    return ok_field(data[21:])


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    try:
        ok = ping(host, port, timeout)
    except (OSError, ValueError, struct.error) as e:
        print("ping %s:%d: %s" % (host, port, e), file=sys.stderr)
        return 1
    if ok != 1:
        print("ping %s:%d: ok = %r" % (host, port, ok), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
