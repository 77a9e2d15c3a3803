"""ctlclient: the test suite's own client of hopperd's control socket (schema/control-protocol.md).

Standard library only; the TCP handshake uses libsodium through ctypes (libsodium.so.23). It is a
test tool, deliberately independent of libhopper and client/ (so the daemon is checked against the
protocol document, not against another implementation of it). Used by tests/e2e/ctl_*.sh and bench/ctl.sh.

    c = Client.unix(path); c.hello(); c.auth(token=...)       # or c.auth(peercred=True)
    c = Client.tcp("127.0.0.1", port, token); c.handshake()    # hello + keys + auth
    r = c.call("status", job="j1")                            # the reply dict
    for msg in c.stream("watch", job="j1"): ...               # events, then the done reply
"""
import base64
import ctypes
import json
import socket
import struct

_sodium = None


def sodium():
    global _sodium
    if _sodium is None:
        _sodium = ctypes.CDLL("libsodium.so.23")
        if _sodium.sodium_init() < 0:
            raise RuntimeError("sodium_init failed")
    return _sodium


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def blake2b(msg, key=b"", n=32):
    out = ctypes.create_string_buffer(n)
    k = key if key else None
    if sodium().crypto_generichash(out, ctypes.c_size_t(n), msg, ctypes.c_ulonglong(len(msg)), k,
                                   ctypes.c_size_t(len(key))) != 0:
        raise RuntimeError("crypto_generichash failed")
    return out.raw


def token_hash(secret):
    return blake2b(secret, key=b"hopper-ctl-v1 token")


def parse_token(token):
    assert token.startswith("hop_") and len(token) == 60, token
    return token[4:16], unb64(token[17:])


def transcript(c, s):
    return blake2b(b"hopper-ctl-v1 transcript" + struct.pack(">I", len(c)) + c + struct.pack(">I", len(s)) + s)


class ProtocolError(Exception):
    pass


class Closed(Exception):
    pass


class Session:
    """One side's keys and counters (the client side of the protocol's TCP section)."""

    def __init__(self, tx, rx):
        self.tx, self.rx, self.tx_n, self.rx_n = tx, rx, 0, 0

    @staticmethod
    def nonce(n):
        return struct.pack("<Q", n) + b"\0" * 16

    def seal(self, plain):
        hdr = struct.pack(">I", len(plain) + 16)
        out = ctypes.create_string_buffer(len(plain) + 16)
        clen = ctypes.c_ulonglong()
        sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(out, ctypes.byref(clen), plain,
                                                           ctypes.c_ulonglong(len(plain)), hdr,
                                                           ctypes.c_ulonglong(4), None, self.nonce(self.tx_n), self.tx)
        self.tx_n += 1
        return hdr + out.raw[:clen.value]

    def open(self, c):
        hdr = struct.pack(">I", len(c))
        out = ctypes.create_string_buffer(max(len(c), 1))
        mlen = ctypes.c_ulonglong()
        rc = sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(out, ctypes.byref(mlen), None, c,
                                                                ctypes.c_ulonglong(len(c)), hdr, ctypes.c_ulonglong(4),
                                                                self.nonce(self.rx_n), self.rx)
        if rc != 0:
            return None
        self.rx_n += 1
        return out.raw[:mlen.value]


def client_session(cpk, csk, spk, psk, th):
    rx = ctypes.create_string_buffer(32)
    tx = ctypes.create_string_buffer(32)
    if sodium().crypto_kx_client_session_keys(rx, tx, cpk, csk, spk) != 0:
        raise ProtocolError("bad server key")
    k_c2s = blake2b(b"hopper-ctl-v1 c2s" + tx.raw + th, key=psk)
    k_s2c = blake2b(b"hopper-ctl-v1 s2c" + rx.raw + th, key=psk)
    return Session(k_c2s, k_s2c)


def keypair():
    pk = ctypes.create_string_buffer(32)
    sk = ctypes.create_string_buffer(32)
    sodium().crypto_kx_keypair(pk, sk)
    return pk.raw, sk.raw


class Client:
    def __init__(self, sock, tcp=False, timeout=30.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.tcp = tcp
        self.buf = b""
        self.session = None
        self.next_id = 1
        self.stash = []  # frames read while waiting for another id
        self.sent = []  # raw bytes sent (for replay tests)
        self.received = []

    @classmethod
    def unix(cls, path, timeout=30.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return cls(s, False, timeout)

    @classmethod
    def tcp_connect(cls, host, port, timeout=30.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((host, port))
        return cls(s, True, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # --- frames ---
    def send_raw(self, data):
        self.sent.append(data)
        self.sock.sendall(data)

    def send_obj(self, obj, clear=False):
        text = json.dumps(obj, separators=(",", ":")).encode()
        if self.session and not clear:
            self.send_raw(self.session.seal(text))
        else:
            self.send_raw(struct.pack(">I", len(text)) + text)
        return text

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed by the server")
            self.received.append(chunk)
            self.buf += chunk

    def recv_payload(self):
        self._fill(4)
        (n,) = struct.unpack(">I", self.buf[:4])
        self._fill(4 + n)
        p, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return p

    def recv_obj(self):
        p = self.recv_payload()
        if self.session:
            plain = self.session.open(p)
            if plain is None:
                # The one cleartext frame after the hello: a failed-auth error.
                try:
                    m = json.loads(p)
                except ValueError:
                    raise ProtocolError("encrypted frame failed to open")
                if isinstance(m, dict) and m.get("ok") is False:
                    return m
                raise ProtocolError("encrypted frame failed to open")
            p = plain
        return json.loads(p)

    # --- requests ---
    def request(self, op, **fields):
        rid = self.next_id
        self.next_id += 1
        msg = {"id": rid, "op": op}
        msg.update({k: v for k, v in fields.items() if v is not None})
        self.send_obj(msg)
        return rid

    def wait(self, rid):
        """The reply to request rid; a connection-level error (id null: too_large, auth_failed on TCP) too."""
        for i, m in enumerate(self.stash):
            if m.get("id") == rid and "event" not in m:
                return self.stash.pop(i)
        while True:
            m = self.recv_obj()
            if (m.get("id") == rid and "event" not in m) or (m.get("id") is None and m.get("ok") is False):
                return m
            self.stash.append(m)

    def call(self, op, **fields):
        return self.wait(self.request(op, **fields))

    def result(self, op, **fields):
        r = self.call(op, **fields)
        if not r.get("ok"):
            raise ProtocolError("%s: %s" % (op, r.get("error")))
        return r["result"]

    def stream(self, op, **fields):
        """Yields every frame of one streaming request: events, then the final reply."""
        rid = self.request(op, **fields)
        while True:
            m = None
            for i, s in enumerate(self.stash):
                if s.get("id") == rid:
                    m = self.stash.pop(i)
                    break
            if m is None:
                m = self.recv_obj()
                if m.get("id") != rid:
                    self.stash.append(m)
                    continue
            yield m
            if "event" not in m:
                return

    # --- connection set-up ---
    def hello(self, version=1):
        return self.call("hello", version=version)

    def auth(self, token=None, peercred=None):
        return self.call("auth", token=token, peercred=peercred)

    def handshake(self, token, version=1):
        """TCP: clear hello with an ephemeral key, session keys, then the encrypted auth."""
        tid, secret = parse_token(token)
        pk, sk = keypair()
        chello = self.send_obj({"id": 0, "op": "hello", "version": version, "token_id": tid, "pk": b64(pk)})
        shello = self.recv_payload()
        reply = json.loads(shello)
        if not reply.get("ok"):
            return reply
        spk = unb64(reply["result"]["pk"])
        self.session = client_session(pk, sk, spk, token_hash(secret), transcript(chello, shello))
        return self.call("auth", token=token)


def connect(sock=None, tcp=None, token=None, peercred=False, timeout=30.0):
    """A connected, authenticated client: unix (sock path) or TCP ("host:port" with a token)."""
    if tcp:
        host, port = tcp.rsplit(":", 1)
        c = Client.tcp_connect(host.strip("[]"), int(port), timeout)
        r = c.handshake(token)
    else:
        c = Client.unix(sock, timeout)
        r = c.hello()
        if not r.get("ok"):
            raise ProtocolError("hello: %s" % r)
        r = c.auth(token=token, peercred=True if peercred else None)
    if not r.get("ok"):
        raise ProtocolError("auth: %s" % r.get("error"))
    return c


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="one control-socket request; prints the reply(s) as JSON lines")
    ap.add_argument("--socket")
    ap.add_argument("--tcp")
    ap.add_argument("--token")
    ap.add_argument("--peercred", action="store_true")
    ap.add_argument("op")
    ap.add_argument("fields", nargs="?", default="{}", help="JSON object of the op's fields")
    a = ap.parse_args()
    c = connect(a.socket, a.tcp, a.token, a.peercred)
    fields = json.loads(a.fields)
    if a.op == "watch":
        last = None
        for m in c.stream("watch", **fields):
            print(json.dumps(m))
            last = m
        sys.exit(0 if last.get("ok") else 1)
    r = c.call(a.op, **fields)
    print(json.dumps(r))
    sys.exit(0 if r.get("ok") else 1)
