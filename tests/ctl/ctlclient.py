"""ctlclient: the test suite's own client of hopperd's control socket (schema/control-protocol.md).

Standard library only; the TCP handshake (Noise XK, written here from the spec with hashlib/hmac) uses
libsodium through ctypes (libsodium.so.23) for X25519 and ChaCha20-Poly1305. It is a test tool,
deliberately independent of libhopper and client/ (so the daemon is checked against the protocol
document, not against another implementation of it). Used by tests/e2e/ctl_*.sh and bench/ctl.sh.

    c = Client.unix(path); c.hello(); c.auth(token=...)       # or c.auth(peercred=True)
    c = connect(tcp="127.0.0.1:PORT", token=..., server_key=KEY)  # Noise XK + auth (KEY None: ask first)
    r = c.call("status", job="j1")                            # the reply dict
    for msg in c.stream("watch", job="j1"): ...               # events, then the done reply
"""
import base64
import ctypes
import hashlib
import hmac
import json
import os
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
    """Protocol 1's stored value (still recognised on the unix socket until a row is upgraded)."""
    return blake2b(secret, key=b"hopper-ctl-v1 token")


def parse_token(token):
    assert token.startswith("hop_") and len(token) == 60, token
    return token[4:16], unb64(token[17:])


# --- Noise_XK_25519_ChaChaPoly_SHA256, written from the spec (noiseprotocol.org rev. 34) with hashlib/hmac;
# libsodium gives only X25519 and ChaCha20-Poly1305. Independent of common/ctl_crypto.c on purpose: both are
# checked against cacophony's vector (noise_xk_vector.json), and each against the other on real traffic. ---

NOISE_NAME = b"Noise_XK_25519_ChaChaPoly_SHA256"
PROLOGUE = b"hopper-ctl 2"


def x25519(sk, pk):
    out = ctypes.create_string_buffer(32)
    if sodium().crypto_scalarmult(out, sk, pk) != 0:
        raise ProtocolError("x25519: low-order point")
    return out.raw


def x25519_base(sk):
    out = ctypes.create_string_buffer(32)
    sodium().crypto_scalarmult_base(out, sk)
    return out.raw


def chacha_nonce(n):
    return b"\0" * 4 + struct.pack("<Q", n)


def aead_enc(k, n, ad, plain):
    out = ctypes.create_string_buffer(len(plain) + 16)
    clen = ctypes.c_ulonglong()
    sodium().crypto_aead_chacha20poly1305_ietf_encrypt(out, ctypes.byref(clen), plain, ctypes.c_ulonglong(len(plain)),
                                                       ad, ctypes.c_ulonglong(len(ad)), None, chacha_nonce(n), k)
    return out.raw[:clen.value]


def aead_dec(k, n, ad, c):
    if len(c) < 16:
        return None
    out = ctypes.create_string_buffer(max(len(c), 1))
    mlen = ctypes.c_ulonglong()
    rc = sodium().crypto_aead_chacha20poly1305_ietf_decrypt(out, ctypes.byref(mlen), None, c, ctypes.c_ulonglong(len(c)),
                                                            ad, ctypes.c_ulonglong(len(ad)), chacha_nonce(n), k)
    return out.raw[:mlen.value] if rc == 0 else None


def token_keypair(secret):
    """The token's client static key: sk = HMAC-SHA256("hopper-ctl-v2 client key", secret); pk the verifier."""
    sk = hmac.new(b"hopper-ctl-v2 client key", secret, hashlib.sha256).digest()
    return x25519_base(sk), sk


def token_verifier(secret):
    return token_keypair(secret)[0]


def _hkdf(ck, ikm):
    t = hmac.new(ck, ikm, hashlib.sha256).digest()
    o1 = hmac.new(t, b"\x01", hashlib.sha256).digest()
    o2 = hmac.new(t, o1 + b"\x02", hashlib.sha256).digest()
    return o1, o2


class NoiseXK:
    """One side of a Noise_XK handshake. initiator: s = (pk, sk), rs = the responder's public key."""
    PATTERN = [["e", "es"], ["e", "ee"], ["s", "se"]]

    def __init__(self, initiator, s, rs=None, prologue=PROLOGUE, e=None):
        self.e = None
        self.h = NOISE_NAME  # exactly HASHLEN bytes: used as is
        self.ck, self.k, self.n = self.h, None, 0
        self.initiator, self.s, self.rs, self.re, self.fixed_e = initiator, s, rs, None, e
        self.msg = 0
        self._mix_hash(prologue)
        self._mix_hash(rs if initiator else s[0])

    def _mix_hash(self, data):
        self.h = hashlib.sha256(self.h + data).digest()

    def _mix_key(self, ikm):
        self.ck, self.k = _hkdf(self.ck, ikm)
        self.n = 0

    def _enc(self, plain):
        if self.k is None:
            c = plain
        else:
            c = aead_enc(self.k, self.n, self.h, plain)
            self.n += 1
        self._mix_hash(c)
        return c

    def _dec(self, c):
        if self.k is None:
            p = c
        else:
            p = aead_dec(self.k, self.n, self.h, c)
            self.n += 1
            if p is None:
                raise ProtocolError("noise: a handshake message does not open")
        self._mix_hash(c)
        return p

    def _dh(self, tok):
        # es: the initiator's ephemeral with the responder's static; se the other way round
        mine, theirs = {"ee": ("e", "e"), "es": ("e", "s"), "se": ("s", "e")}[tok]
        if not self.initiator:
            mine, theirs = theirs, mine
        sk = (self.e if mine == "e" else self.s)[1]
        pk = self.re if theirs == "e" else self.rs
        self._mix_key(x25519(sk, pk))

    def write(self, payload=b""):
        out = b""
        for tok in self.PATTERN[self.msg]:
            if tok == "e":
                if self.fixed_e:
                    self.e, self.fixed_e = self.fixed_e, None
                else:
                    sk = os.urandom(32)
                    self.e = (x25519_base(sk), sk)
                out += self.e[0]
                self._mix_hash(self.e[0])
            elif tok == "s":
                out += self._enc(self.s[0])
            else:
                self._dh(tok)
        self.msg += 1
        return out + self._enc(payload)

    def read(self, m):
        off = 0
        for tok in self.PATTERN[self.msg]:
            if tok == "e":
                self.re = m[off:off + 32]
                self._mix_hash(self.re)
                off += 32
            elif tok == "s":
                self.rs = self._dec(m[off:off + 48])
                off += 48
            else:
                self._dh(tok)
        self.msg += 1
        return self._dec(m[off:])

    def split(self):
        k1, k2 = _hkdf(self.ck, b"")
        return Session(k1, k2) if self.initiator else Session(k2, k1)


def vector_selftest(path=None):
    """Runs this module's Noise against cacophony's XK vector. Returns None, or what differs."""
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "noise_xk_vector.json")
    v = json.load(open(path))
    hx = bytes.fromhex
    ipk, isk = x25519_base(hx(v["init_static"])), hx(v["init_static"])
    rsk = hx(v["resp_static"])
    ie, re_ = hx(v["init_ephemeral"]), hx(v["resp_ephemeral"])
    i = NoiseXK(True, (ipk, isk), hx(v["init_remote_static"]), hx(v["init_prologue"]), (x25519_base(ie), ie))
    r = NoiseXK(False, (x25519_base(rsk), rsk), None, hx(v["resp_prologue"]), (x25519_base(re_), re_))
    for k, m in enumerate(v["messages"][:3]):
        w, rd = (i, r) if k % 2 == 0 else (r, i)
        c = w.write(hx(m["payload"]))
        if c != hx(m["ciphertext"]):
            return "handshake message %d differs" % k
        if rd.read(c) != hx(m["payload"]):
            return "handshake message %d does not read back" % k
    if i.h != hx(v["handshake_hash"]):
        return "handshake hash differs"
    ci, cr = i.split(), r.split()
    for k, m in enumerate(v["messages"][3:], 3):
        w, rd = (ci, cr) if k % 2 == 0 else (cr, ci)
        c = w.seal(hx(m["payload"]))
        if c[4:] != hx(m["ciphertext"]) or rd.open(c[4:]) != hx(m["payload"]):
            return "transport message %d differs" % k
    return None


class ProtocolError(Exception):
    pass


class Closed(Exception):
    pass


class Session:
    """One side's transport keys and counters (Noise CipherStates: empty associated data)."""

    def __init__(self, tx, rx):
        self.tx, self.rx, self.tx_n, self.rx_n = tx, rx, 0, 0

    def seal(self, plain):
        c = aead_enc(self.tx, self.tx_n, b"", plain)
        self.tx_n += 1
        return struct.pack(">I", len(c)) + c

    def open(self, c):
        p = aead_dec(self.rx, self.rx_n, b"", c)
        if p is not None:
            self.rx_n += 1
        return p


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
    def hello(self, version=2):
        return self.call("hello", version=version)

    def auth(self, token=None, peercred=None):
        return self.call("auth", token=token, peercred=peercred)

    def probe_key(self, version=2):
        """TCP: a hello without a handshake message asks the daemon for its key (first use). The daemon then
        closes the connection. Returns the key (bytes) or the error reply."""
        r = self.call("hello", version=version)
        if not r.get("ok"):
            return r
        return unb64(r["result"]["server_key"])

    def handshake(self, token, server_key=None, version=2, token_id=None, auth=None):
        """TCP: Noise XK against server_key (bytes; None: ask the daemon first, on a second connection from
        this one's address): message 1 in the hello, message 2 in its reply, message 3 carrying the auth
        request. Returns the auth reply (or the hello's error). self.server is the hello result from
        message 2."""
        if server_key is None:
            server_key = probe_key(*self.sock.getpeername()[:2], src=self.sock.getsockname()[0])
            if isinstance(server_key, dict):
                return server_key
        tid, secret = parse_token(token)
        self.noise = NoiseXK(True, token_keypair(secret), server_key)
        m1 = self.noise.write()
        r = self.call("hello", version=version, noise=b64(m1))
        if not r.get("ok"):
            return r
        self.server = json.loads(self.noise.read(unb64(r["result"]["noise"])))
        rid = self.next_id
        self.next_id += 1
        req = dict({"id": rid, "op": "auth"}, **(auth if auth is not None else {"token_id": token_id or tid}))
        m3 = self.noise.write(json.dumps(req, separators=(",", ":")).encode())
        self.send_raw(struct.pack(">I", len(m3)) + m3)
        self.session = self.noise.split()
        return self.wait(rid)


def probe_key(host, port, src=None):
    """The daemon's key (bytes), asked in a hello without a handshake message; or the error reply."""
    if src is None:
        c = Client.tcp_connect(host, port)
    else:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.connect((host, port))
        c = Client(s, True)
    try:
        return c.probe_key()
    finally:
        c.close()


def connect(sock=None, tcp=None, token=None, peercred=False, timeout=30.0, server_key=None):
    """A connected, authenticated client: unix (sock path) or TCP ("host:port" with a token; server_key the
    daemon's key as bytes, or None to ask the daemon for it first)."""
    if tcp:
        host, port = tcp.rsplit(":", 1)
        if server_key is None:
            server_key = probe_key(host.strip("[]"), int(port))
            if isinstance(server_key, dict):
                raise ProtocolError("key probe: %s" % server_key)
        c = Client.tcp_connect(host.strip("[]"), int(port), timeout)
        r = c.handshake(token, server_key)
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
