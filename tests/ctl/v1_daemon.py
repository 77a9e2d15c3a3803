#!/usr/bin/python3
"""v1_daemon.py PORT_FILE: answers a protocol-2 hello over TCP exactly as a protocol-1 hopperd (commit f7a9ec9)
did, byte for byte: frames are a 4-byte big-endian length and JSON; the old daemon refused a hello carrying
"noise" as a field it does not take, and a hello without its own TCP fields (token_id, pk). The two replies
were captured from the real f7a9ec9 hopperd through a loopback proxy. Used by ctl_old_daemon.sh when no old
build is at hand (HOPPER_OLD_BUILD runs the real one). Writes its port to PORT_FILE; ends on SIGTERM."""
import json
import socket
import struct
import sys

NOISE = b'{"id":null,"ok":false,"error":{"code":"bad_request","message":"op \'hello\' takes no field \'noise\'"}}'
NO_PK = (b'{"id":null,"ok":false,"error":{"code":"bad_request","message":"over TCP, hello needs token_id and pk '
         b'(32 bytes, base64url)"}}')


def read_frame(c):
    head = b""
    while len(head) < 4:
        d = c.recv(4 - len(head))
        if not d:
            return None
        head += d
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        d = c.recv(n - len(body))
        if not d:
            return None
        body += d
    return body


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    with open(sys.argv[1], "w") as f:
        f.write("%d\n" % ls.getsockname()[1])
    while True:
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            body = read_frame(c)
            if body is not None:
                hello = json.loads(body)
                reply = NOISE if "noise" in hello else NO_PK
                c.sendall(struct.pack(">I", len(reply)) + reply)
        except (OSError, ValueError):
            pass
        c.close()


if __name__ == "__main__":
    main()
