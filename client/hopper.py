"""hopper.py: a Python client of hopperd's control socket (standard library only).

Speaks the control protocol documented in schema/control-protocol.md: 4-byte big-endian length frames of
JSON, a hello, then auth, then requests. Over the Unix socket a token (or, for root / the daemon's user,
peer credentials) authenticates; over TCP a Noise_XK_25519_ChaChaPoly_SHA256 handshake authenticates the
daemon by the key the client pinned (server_key=, or a known_hosts file recorded on first use) and the client
by its token's key (the secret never crosses the connection), and encrypts every frame after it (hashlib and
hmac; libsodium through ctypes for X25519 and ChaCha20-Poly1305: libsodium.so.23).

Usable from a web backend (FastAPI, Django): one Client per thread or per request; it is not thread-safe.

    from hopper import Client, HopperError
    with Client(socket="/var/lib/hopper/hopper.sock", token=TOKEN) as c:
        job = c.submit("sleep", {"ms": 500}, queue="default")
        for ev in c.watch(job["id"]):
            print(ev["state"], ev["progress"])
        print(c.status(job["id"])["state"])
        c.workflow_put({"name": "notify", "steps": [...]})       # stored workflows (workflow.* ops)
        run = c.workflow_run("notify", input={"order": 77}, wait=True)
        print(run["state"], [s["step"] for s in c.logs(run["id"])["steps"]])

Errors raise HopperError with .code (the protocol's error code, e.g. "not_found", or "transport" /
"timeout" for the client's own), .message and .exit_code (hopperctl's exit status for it).
"""

import ctypes
import ctypes.util
import hashlib
import hmac
import json
import os
import socket as _socket
import struct
import time

__all__ = ["Client", "HopperError", "TERMINAL_STATES", "PROTOCOL_VERSION"]
__version__ = "0.1.0"

PROTOCOL_VERSION = 2
TERMINAL_STATES = frozenset(("succeeded", "failed", "dead", "cancelled"))
MAX_FRAME = 64 * 1024 * 1024  # the client's own ceiling on replies (the protocol's largest frame)
_SEAL_OVERHEAD = 16

# hopperctl's exit code per protocol error (ctl_errors[] in common/ctl_proto.c), plus the client's own.
EXIT_CODES = {
    "bad_request": 2, "unknown_op": 3, "too_large": 4, "version": 5, "unauthenticated": 6,
    "auth_failed": 7, "locked_out": 8, "forbidden": 9, "not_found": 10, "conflict": 11,
    "unavailable": 12, "limit": 13, "internal": 14, "transport": 15, "timeout": 16,
}


class HopperError(Exception):
    """A failed request: .code is the protocol's error code ("not_found", "forbidden", ...) or the
    client's own ("transport": no connection, connection lost, a frame that does not open; "timeout");
    .message the daemon's text; .exit_code hopperctl's exit status for the code."""

    def __init__(self, code, message):
        if code not in EXIT_CODES:
            code = "internal"  # a code this client does not know (protocol rule)
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.exit_code = EXIT_CODES[code]


# --- TCP cryptography (see "TCP: handshake and encrypted frames" in the protocol document) ---

class _Sodium:
    """The few libsodium functions the handshake needs that hashlib lacks: X25519 and ChaCha20-Poly1305."""

    def __init__(self):
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        self.lib = ctypes.CDLL(name)
        if self.lib.sodium_init() < 0:
            raise HopperError("transport", "libsodium failed to initialise")

    def dh(self, sk, pk):
        out = ctypes.create_string_buffer(32)
        if self.lib.crypto_scalarmult(out, sk, pk) != 0:
            raise HopperError("transport", "the daemon sent an unusable key")
        return out.raw

    def base(self, sk):
        out = ctypes.create_string_buffer(32)
        self.lib.crypto_scalarmult_base(out, sk)
        return out.raw

    def seal(self, key, n, plain, ad=b""):
        out = ctypes.create_string_buffer(len(plain) + _SEAL_OVERHEAD)
        olen = ctypes.c_ulonglong(0)
        self.lib.crypto_aead_chacha20poly1305_ietf_encrypt(
            out, ctypes.byref(olen), plain, ctypes.c_ulonglong(len(plain)), ad, ctypes.c_ulonglong(len(ad)),
            None, _nonce(n), key)
        return out.raw[:olen.value]

    def open(self, key, n, cipher, ad=b""):
        if len(cipher) < _SEAL_OVERHEAD:
            return None
        out = ctypes.create_string_buffer(max(len(cipher) - _SEAL_OVERHEAD, 1))
        olen = ctypes.c_ulonglong(0)
        r = self.lib.crypto_aead_chacha20poly1305_ietf_decrypt(
            out, ctypes.byref(olen), None, cipher, ctypes.c_ulonglong(len(cipher)), ad,
            ctypes.c_ulonglong(len(ad)), _nonce(n), key)
        return out.raw[:olen.value] if r == 0 else None


_sodium = None


def _nonce(n):
    return bytes(4) + struct.pack("<Q", n)


def _hkdf2(ck, ikm):
    t = hmac.new(ck, ikm, hashlib.sha256).digest()
    o1 = hmac.new(t, b"\x01", hashlib.sha256).digest()
    return o1, hmac.new(t, o1 + b"\x02", hashlib.sha256).digest()


class _Initiator:
    """The client side of Noise_XK_25519_ChaChaPoly_SHA256 (noiseprotocol.org, rev. 34):
    <- s; ...; -> e, es; <- e, ee; -> s, se. s: the token's key pair; rs: the pinned daemon key."""

    def __init__(self, s_pk, s_sk, rs):
        self.s_pk, self.s_sk, self.rs = s_pk, s_sk, rs
        self.h = self.ck = b"Noise_XK_25519_ChaChaPoly_SHA256"
        self.k, self.n = None, 0
        self._mix_hash(b"hopper-ctl 2")  # the prologue
        self._mix_hash(rs)

    def _mix_hash(self, d):
        self.h = hashlib.sha256(self.h + d).digest()

    def _mix_key(self, ikm):
        self.ck, self.k = _hkdf2(self.ck, ikm)
        self.n = 0

    def _enc(self, p):
        c = _sodium.seal(self.k, self.n, p, self.h)
        self.n += 1
        self._mix_hash(c)
        return c

    def _dec(self, c):
        p = _sodium.open(self.k, self.n, c, self.h)
        if p is None:
            return None
        self.n += 1
        self._mix_hash(c)
        return p

    def message1(self):
        self.e_sk = os.urandom(32)
        e_pk = _sodium.base(self.e_sk)
        self._mix_hash(e_pk)
        self._mix_key(_sodium.dh(self.e_sk, self.rs))  # es
        return e_pk + self._enc(b"")

    def read2(self, m):
        if len(m) < 48:
            return None
        re = m[:32]
        self._mix_hash(re)
        self._mix_key(_sodium.dh(self.e_sk, re))  # ee
        self.re = re
        return self._dec(m[32:])

    def message3(self, payload):
        c = self._enc(self.s_pk)
        self._mix_key(_sodium.dh(self.s_sk, self.re))  # se
        out = c + self._enc(payload)
        k1, k2 = _hkdf2(self.ck, b"")
        return out, k1, k2


def _token_key(secret):
    sk = hmac.new(b"hopper-ctl-v2 client key", secret, hashlib.sha256).digest()
    return _sodium.base(sk), sk


def _known_hosts_lookup(path, hostport):
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                w = line.split()
                if len(w) >= 2 and not w[0].startswith("#") and w[0] == hostport:
                    return w[1], n
    except FileNotFoundError:
        pass
    except OSError as e:
        raise HopperError("bad_request", "known_hosts %s: %s" % (path, e)) from None
    return None, 0


def _known_hosts_add(path, hostport, key):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("%s %s\n" % (hostport, key)).encode())
    finally:
        os.close(fd)


def _b64url_decode(s):
    import base64
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _b64url_encode(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _parse_token(token):
    """hop_<12 hex>_<43 base64url> -> (id, 32-byte secret)."""
    if not isinstance(token, str) or len(token) != 60 or not token.startswith("hop_") or token[16] != "_":
        raise HopperError("bad_request", "the token is not of the form hop_<12 hex>_<43 base64url>")
    tid = token[4:16]
    if any(ch not in "0123456789abcdef" for ch in tid):
        raise HopperError("bad_request", "the token id is not 12 lowercase hex digits")
    try:
        secret = _b64url_decode(token[17:])
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise HopperError("bad_request", "the token secret is not 32 bytes of base64url")
    return tid, secret


class Client:
    """One authenticated connection to hopperd.

    Client(socket="/path/hopperd.sock", token=None)  -- Unix socket; no token: peer credentials
    Client(host="127.0.0.1", port=7070, token="hop_...", server_key=KEY or known_hosts=PATH)  -- TCP (Noise
        XK): the daemon must hold the pinned key (server_key: base64url, as hopperd --print-pubkey prints it;
        or the known_hosts entry for HOST:PORT, recorded on first use); one that does not is refused
        (HopperError "auth_failed" saying so). A token is required; its secret never crosses the connection.
    timeout: seconds for connecting and for each request's reply (watch has its own deadline).
    """

    def __init__(self, socket=None, token=None, host=None, port=None, timeout=30.0, client="hopper.py/" + __version__,
                 server_key=None, known_hosts=None):
        self.timeout = timeout
        self._sock = None
        self._tx = self._rx = None
        self._tx_n = self._rx_n = 0
        self._next_id = 1
        self._broken = False
        self.max_frame = 1024 * 1024
        if token is None and host is not None:
            raise HopperError("bad_request", "TCP needs a token (peer credentials work on the Unix socket only)")
        parsed = _parse_token(token) if token is not None else None
        self.learned_key = None  # a key this connect recorded in known_hosts (first use)
        if socket is None and host is not None:
            if port is None and ":" in host and not host.endswith("]"):
                host, port = host.rsplit(":", 1)
            self._pin(host, port, server_key, known_hosts, timeout, client)
        try:
            if socket is not None:
                self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(socket)
            elif host is not None:
                self._sock = _socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
            else:
                raise HopperError("bad_request", "give socket= or host= and port=")
        except OSError as e:
            self.close()
            raise HopperError("transport", "cannot connect: %s" % e) from None
        try:
            if socket is None:
                self.identity = self._handshake_tcp(parsed, client)
            else:
                self._hello(client)
                self.identity = self._auth(token)
        except BaseException:
            self.close()
            raise

    # --- context manager ---
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the connection. Safe to call twice."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
        self._tx = self._rx = None
        self._broken = True

    # --- frames ---
    def _recv_exact(self, n, deadline):
        buf = bytearray()
        while len(buf) < n:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise HopperError("timeout", "no answer from the daemon in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(n - len(buf))
            except _socket.timeout:
                raise HopperError("timeout", "no answer from the daemon in time") from None
            except OSError as e:
                self._fail()
                raise HopperError("transport", "reading from the daemon: %s" % e) from None
            if not chunk:
                self._fail()
                raise HopperError("transport", "the daemon closed the connection")
            buf += chunk
            deadline = time.monotonic() + self.timeout  # a frame once started must arrive whole
        return bytes(buf)

    def _fail(self):
        self._broken = True

    def _read_frame(self, deadline, allow_clear=False):
        """One payload (decrypted on TCP). Returns (bytes, was_cleartext)."""
        hdr = self._recv_exact(4, deadline)
        (n,) = struct.unpack(">I", hdr)
        limit = MAX_FRAME + (_SEAL_OVERHEAD if self._rx else 0)
        if n == 0 or n > limit:
            self._fail()
            raise HopperError("transport", "the daemon sent a frame of %d bytes" % n)
        payload = self._recv_exact(n, time.monotonic() + self.timeout)
        if self._rx is None:
            return payload, False
        plain = _sodium.open(self._rx, self._rx_n, payload) if len(payload) > _SEAL_OVERHEAD else None
        if plain is not None:
            self._rx_n += 1
            return plain, False
        if allow_clear and payload[:1] == b"{":
            return payload, True  # the protocol's one cleartext error frame (failed auth on TCP)
        self._fail()
        raise HopperError("transport", "a frame from the daemon did not open (altered or wrong keys)")

    def _send_frame(self, text):
        data = text.encode("utf-8")
        if len(data) > self.max_frame:
            raise HopperError("too_large", "the request is %d bytes, over the daemon's limit of %d"
                              % (len(data), self.max_frame))
        if self._tx is not None:
            frame = struct.pack(">I", len(data) + _SEAL_OVERHEAD) + _sodium.seal(self._tx, self._tx_n, data)
            self._tx_n += 1
        else:
            frame = struct.pack(">I", len(data)) + data
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(frame)
        except OSError as e:
            self._fail()
            raise HopperError("transport", "sending to the daemon: %s" % e) from None

    @staticmethod
    def _parse(payload):
        try:
            msg = json.loads(payload.decode("utf-8"))
        except ValueError as e:
            raise HopperError("transport", "bad frame from the daemon: %s" % e) from None
        if not isinstance(msg, dict) or "id" not in msg or (("ok" in msg) == ("event" in msg)):
            raise HopperError("transport", "bad frame from the daemon")
        return msg

    @staticmethod
    def _raise_if_error(msg):
        if msg.get("ok") is False:
            err = msg.get("error") or {}
            raise HopperError(err.get("code", "internal"), err.get("message", ""))

    @staticmethod
    def _raise_hello_error(msg):
        """A protocol-1 daemon refuses protocol 2's hello (the field "noise"; over TCP, a hello without its
        protocol-1 fields): said as what it is."""
        err = msg.get("error") or {} if msg.get("ok") is False else {}
        m = err.get("message", "")
        if err.get("code") == "bad_request" and (("unknown field" in m or "takes no field" in m) and "noise" in m
                                                 or "hello needs token_id and pk" in m):
            raise HopperError("version", "daemon speaks protocol v1, this client needs v%d: upgrade hopperd "
                                         "(it said: %s)" % (PROTOCOL_VERSION, m[:200]))
        Client._raise_if_error(msg)

    # --- connection setup ---
    def _pin(self, host, port, server_key, known_hosts, timeout, client):
        global _sodium
        if _sodium is None:
            _sodium = _Sodium()
        hp = "%s:%s" % (host, port)
        if server_key:
            key, self._pinned_from = server_key, "server_key"
        elif known_hosts:
            key, line = _known_hosts_lookup(known_hosts, hp)
            self._pinned_from = "%s:%d" % (known_hosts, line)
            if key is None:  # first use: ask the daemon, record it
                self._sock = _socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
                try:
                    self._send_frame(json.dumps({"op": "hello", "version": PROTOCOL_VERSION, "client": client}))
                    reply = self._parse(self._read_frame(time.monotonic() + timeout)[0])
                    self._raise_hello_error(reply)
                    key = (reply.get("result") or {}).get("server_key")
                finally:
                    self.close()
                    self._broken = False
                if not isinstance(key, str):
                    raise HopperError("transport", "the daemon did not say its key")
                _known_hosts_add(known_hosts, hp, key)
                self.learned_key, self._pinned_from = key, known_hosts + ", recorded now"
        else:
            raise HopperError("bad_request", "TCP needs the daemon's key: server_key= (hopperd --print-pubkey) "
                                             "or known_hosts=")
        try:
            self._rs = _b64url_decode(key)
        except ValueError:
            self._rs = b""
        if len(self._rs) != 32:
            raise HopperError("bad_request", "the daemon key (%s) is not 43 base64url characters" % self._pinned_from)
        self._hp, self._key64 = hp, key

    def _mismatch(self, why):
        self._fail()
        return HopperError("auth_failed", "%s %s: it does not hold the key pinned for it (%s, from %s). Either the "
                           "daemon's key was replaced, or this is not that daemon (a man in the middle, or another "
                           "daemon with a copy of its database). If the key was replaced on purpose, remove the "
                           "line from the known_hosts file (or give the new key)"
                           % (self._hp, why, self._key64, self._pinned_from))

    def _hello(self, client):
        self._send_frame(json.dumps({"op": "hello", "version": PROTOCOL_VERSION, "client": client},
                                    separators=(",", ":")))
        reply = self._parse(self._read_frame(time.monotonic() + self.timeout)[0])
        self._raise_hello_error(reply)
        self._take_server(reply.get("result", {}))

    def _take_server(self, server):
        self.server = server
        mf = server.get("max_frame")
        if isinstance(mf, int) and 4096 <= mf <= MAX_FRAME:
            self.max_frame = mf

    def _handshake_tcp(self, parsed, client):
        """Noise XK: message 1 in the hello, 2 in its reply (carrying the hello result), 3 the next frame
        (carrying the auth request: the token's id; the handshake proves the secret)."""
        hs = _Initiator(*_token_key(parsed[1]), self._rs)
        hello = {"op": "hello", "version": PROTOCOL_VERSION, "client": client,
                 "noise": _b64url_encode(hs.message1())}
        self._send_frame(json.dumps(hello, separators=(",", ":")))
        reply = self._parse(self._read_frame(time.monotonic() + self.timeout)[0])
        if reply.get("ok") is False and (reply.get("error") or {}).get("code") == "auth_failed":
            raise self._mismatch("refused the handshake")
        self._raise_hello_error(reply)
        try:
            m2 = _b64url_decode((reply.get("result") or {}).get("noise") or "")
        except ValueError:
            m2 = b""
        payload = hs.read2(m2)
        if payload is None:
            raise self._mismatch("answered with a handshake that does not open")
        try:
            self._take_server(json.loads(payload.decode("utf-8")))
        except ValueError:
            raise HopperError("transport", "the daemon's hello (in the handshake) is not JSON") from None
        rid = self._new_id()
        m3, self._tx, self._rx = hs.message3(json.dumps({"id": rid, "op": "auth", "token_id": parsed[0]},
                                                        separators=(",", ":")).encode())
        try:
            self._sock.sendall(struct.pack(">I", len(m3)) + m3)
        except OSError as e:
            self._fail()
            raise HopperError("transport", "sending to the daemon: %s" % e) from None
        payload, clear = self._read_frame(time.monotonic() + self.timeout, allow_clear=True)
        msg = self._parse(payload)
        self._raise_if_error(msg)
        if clear:
            self._fail()
            raise HopperError("transport", "unexpected cleartext frame from the daemon")
        return msg.get("result", {})

    def _auth(self, token):
        req = {"id": self._new_id(), "op": "auth"}
        if token is not None:
            req["token"] = token
        else:
            req["peercred"] = True
        self._send_frame(json.dumps(req, separators=(",", ":")))  # unix socket only
        payload, clear = self._read_frame(time.monotonic() + self.timeout, allow_clear=True)
        msg = self._parse(payload)
        self._raise_if_error(msg)
        if clear:
            self._fail()
            raise HopperError("transport", "unexpected cleartext frame from the daemon")
        return msg.get("result", {})

    def _new_id(self):
        i = self._next_id
        self._next_id += 1
        return i

    # --- requests ---
    def send(self, op, **fields):
        """Sends one request without waiting; returns its id (pipelining; pair with recv)."""
        if self._broken:
            raise HopperError("transport", "the connection is closed")
        rid = self._new_id()
        req = {k: v for k, v in fields.items() if v is not None}
        req.update(id=rid, op=op)
        self._send_frame(json.dumps(req, separators=(",", ":")))
        return rid

    def recv(self, timeout=None):
        """The next frame from the daemon as a dict (a reply or an event); waits at most timeout seconds
        (None: the client's timeout)."""
        if self._broken:
            raise HopperError("transport", "the connection is closed")
        payload, _ = self._read_frame(time.monotonic() + (self.timeout if timeout is None else timeout))
        return self._parse(payload)

    def call(self, op, **fields):
        """Sends one request (fields whose value is None are left out) and returns its result dict."""
        rid = self.send(op, **fields)
        while True:
            msg = self.recv()
            ours = msg.get("id") == rid or (msg.get("id") is None and msg.get("ok") is False)
            if ours and "ok" in msg:
                self._raise_if_error(msg)
                return msg.get("result", {})

    def ping(self):
        """{"pong": true, "time": ...}"""
        return self.call("ping")

    def submit(self, type=None, args=None, queue=None, **fields):
        """Submits one job: submit("sleep", {"ms": 100}, queue="default", id=..., max_attempts=...,
        timeout_s=..., run_at=..., idempotency_key=..., unique={"key": K, "until": "finished"},
        debounce={"key": K, "delay_s": 5, "max_wait_s": 60}), or a ready job dict: submit(job={...}).
        Returns {"id", "queue", "state"}; while another job holds the unique lock (or idempotency key),
        nothing is written and that job is returned: {"id": holder, "state", "duplicate": True,
        "unique_of": holder}."""
        job = fields.pop("job", None)
        if job is None:
            job = {k: v for k, v in dict(fields, type=type, args=args, queue=queue).items() if v is not None}
        return self.call("submit", job=job)

    def submit_batch(self, jobs):
        """Submits 1..1000 job dicts at once, all or none. Returns the ids in order."""
        return self.call("submit", jobs=list(jobs))["ids"]

    def status(self, job, queue=None):
        """The job view: state, progress, stage, message, result, error, times, ... queue: the job's queue,
        needed only for an id that several queues hold (ids are unique per queue; otherwise conflict)."""
        return self.call("status", job=job, queue=queue)

    def watch(self, job, timeout=None, queue=None):
        """A generator of the job's events (stored ones first, then live ones, in order) until the job
        ends; its return value (StopIteration.value) is the final job view. timeout: seconds for the whole
        watch (None: no limit). queue: as for status. Abandoning the generator early closes the connection (the protocol cannot
        end one stream and keep the connection in step)."""
        rid = self.send("watch", job=job, queue=queue)
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = False
        try:
            while True:
                if deadline is None:
                    payload, _ = self._read_frame(None)
                else:
                    payload, _ = self._read_frame(deadline)
                msg = self._parse(payload)
                if msg.get("id") != rid and not (msg.get("id") is None and msg.get("ok") is False):
                    continue
                if "event" in msg:
                    yield msg["event"]
                    continue
                finished = True
                self._raise_if_error(msg)
                return msg.get("result", {})
        finally:
            if not finished:
                self.close()

    def wait(self, job, timeout=None, queue=None):
        """Blocks until the job ends (or timeout seconds pass: HopperError "timeout"); returns the final
        job view. Its "state" is the outcome: succeeded, failed, dead or cancelled."""
        gen = self.watch(job, timeout, queue)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    def cancel(self, job, queue=None):
        """{"id", "state": "cancelled", "was"}; conflict if the job already ended. queue: as for status."""
        return self.call("cancel", job=job, queue=queue)

    def retry(self, job, queue=None):
        """A failed or dead job back to its queue: {"id", "queue", "state": "queued"}. queue: as for status."""
        return self.call("retry", job=job, queue=queue)

    def workflow_restart(self, job, from_step, queue=None):
        """An ended workflow.run (succeeded, failed or dead) again from step from_step: its records of that
        step and of every step depending on it are dropped, the others' outputs kept, and the run is queued.
        Returns {"id", "queue", "state": "queued", "from", "rerun": [step ids run again]}."""
        return self.call("workflow.restart", job=job, queue=queue, **{"from": from_step})

    def workflow_restart_all(self, from_step, state, queue=None, owner=None):
        """workflow_restart for every workflow.run in state (succeeded, failed or dead) that this credential
        may see (queue: one queue's; owner: one owner's, admin), walking list newest first, each run once.
        A run without a record of from_step, or one that changed state or vanished meanwhile, is counted,
        not raised; any other error is. Returns {"restarted": [ids], "no_step": n, "changed": n}."""
        if state not in ("succeeded", "failed", "dead"):
            raise ValueError("state must be succeeded, failed or dead")
        done, skipped = [], {"no_step": 0, "changed": 0}
        cursor = None
        while True:
            page = self.list(state=state, queue=queue, type="workflow.run", owner=owner, limit=1000,
                             cursor=cursor)
            for job in page["jobs"]:
                try:
                    self.workflow_restart(job["id"], from_step, queue=job.get("queue"))
                    done.append(job["id"])
                except HopperError as e:
                    if e.code == "bad_request":
                        skipped["no_step"] += 1
                    elif e.code in ("conflict", "not_found"):
                        skipped["changed"] += 1
                    else:
                        raise
            cursor = page.get("cursor")
            if cursor is None:
                return dict(restarted=done, **skipped)

    def dead_retry_all(self, queue=None, type=None, error=None, older_than_s=None, chunk=None):
        """Retries every dead job that matches (queue, type, error substring, dead for at least
        older_than_s seconds) and that this credential may see, through the dead_retry op chunk by chunk
        (chunk: entries per call, 1-1000; default 500). Each job dead when the first chunk ran is retried
        once; jobs dying meanwhile are left for the next run. Returns the number retried."""
        total, cursor = 0, None
        while True:
            res = self.call("dead_retry", queue=queue, type=type, error=error, older_than_s=older_than_s,
                            limit=chunk, cursor=cursor)
            total += res["retried"]
            cursor = res.get("cursor")
            if cursor is None:
                return total

    def list(self, state=None, queue=None, type=None, owner=None, limit=None, cursor=None):
        """One page {"jobs": [...], "cursor": str or None}, newest first."""
        return self.call("list", state=state, queue=queue, type=type, owner=owner, limit=limit, cursor=cursor)

    def logs(self, job, limit=None, queue=None):
        """{"node", "attempts", "lines", "steps", "scope", "nodes_answered", "nodes_missing"}: the job's rows
        from every live daemon's execution log, merged by the daemon asked (each row has "node"; a daemon in
        nodes_missing did not answer in time; scope "local": Redis was down, the asked daemon's rows only).
        queue: as for status."""
        return self.call("logs", job=job, limit=limit, queue=queue)

    def queues(self):
        return self.call("queues")

    def stats(self):
        return self.call("stats")

    def pause(self, queue):
        return self.call("pause", queue=queue)

    def resume(self, queue):
        return self.call("resume", queue=queue)

    def token_create(self, name, scopes, owner=None):
        """scopes: a list (or comma-separated string) of submit, read, cancel, admin. The result's "token"
        is the secret, shown this once."""
        if isinstance(scopes, str):
            scopes = [s for s in scopes.split(",") if s]
        return self.call("token.create", name=name, scopes=list(scopes), owner=owner)

    def token_list(self):
        return self.call("token.list")["tokens"]

    def token_revoke(self, name=None, token_id=None):
        return self.call("token.revoke", name=name, token_id=token_id)

    # --- stored workflows (workflow.* ops; see schema/control-protocol.md for the owner rules) ---

    def workflow_put(self, definition, name=None, description=None, active=None, owner=None):
        """Stores (or replaces) a workflow definition (a dict). name defaults to definition["name"].
        Returns the stored row without its definition, with "replaced"."""
        return self.call("workflow.put", definition=definition, name=name, description=description,
                         active=active, owner=owner)

    def workflow_list(self):
        """The stored workflows this credential may see (without definitions), by name."""
        return self.call("workflow.list")["workflows"]

    def workflow_show(self, name):
        """One stored workflow with its definition."""
        return self.call("workflow.show", name=name)

    def workflow_rm(self, name):
        """{"name", "removed": True}; HopperError not_found when there is none (or it is not yours)."""
        return self.call("workflow.rm", name=name)

    def workflow_run(self, name, input=None, queue=None, idempotency_key=None, job_id=None, wait=False,
                     timeout=None):
        """Runs a stored workflow: the daemon submits a workflow.run job carrying its definition. Returns
        {"id", "queue", "state"}, or with wait=True the final job view (see wait())."""
        r = self.call("workflow.run", name=name, input=input, queue=queue, idempotency_key=idempotency_key,
                      job_id=job_id)
        return self.wait(r["id"], timeout) if wait else r

    # --- schedules (schedule.* ops; README "Schedules") ---

    def schedule_put(self, name, cron, job=None, workflow=None, input=None, tz=None, queue=None, misfire=None,
                     misfire_max=None, misfire_grace_s=None, start=None, end=None, jitter_s=None, paused=None,
                     owner=None):
        """Stores (or replaces) a schedule: cron is 5 cron fields, @hourly-style, or "@every 30s"; tz an
        IANA zone (default UTC); exactly one of job (a job dict without id) and workflow (a stored workflow's
        name, with input). Each fire makes one job, id sched-NAME-<fire ms>, however many daemons run.
        misfire: "skip", "once" (default) or "all" for fire times missed while no daemon ran. start/end:
        Unix seconds. Returns {"name", "queue", "cron", "tz", "upcoming", "created"}."""
        return self.call("schedule.put", name=name, cron=cron, job=job, workflow=workflow, input=input, tz=tz,
                         queue=queue, misfire=misfire, misfire_max=misfire_max, misfire_grace_s=misfire_grace_s,
                         start=None if start is None else int(start), end=None if end is None else int(end),
                         jitter_s=jitter_s, paused=paused, owner=owner)

    def send_event(self, key, data=None, owner=None):
        """Sends an event: wakes the workflow runs whose wait_event step waits for key (this credential's
        owner's; admin may name owner). Returns {key, event, at, woken}."""
        return self.call("event.send", key=key, data=data, owner=owner)

    def list_events(self, key, since_s=None, count=None, owner=None):
        """The events kept for key, oldest first, and how many runs wait for it: {key, waiters, events}."""
        return self.call("event.list", key=key, since_s=since_s, count=count, owner=owner)

    def schedule_list(self, queue=None):
        """The schedules this credential may see, by queue and name, with next_fire (Unix seconds)."""
        return self.call("schedule.list", queue=queue)["schedules"]

    def schedule_show(self, name, queue=None, count=None):
        """One schedule: its definition, paused, next_fire, fires, missed, last_job and the next count
        (default 5) fire times in "upcoming"."""
        return self.call("schedule.show", name=name, queue=queue, count=count)

    def schedule_rm(self, name, queue=None):
        return self.call("schedule.rm", name=name, queue=queue)

    def schedule_pause(self, name, queue=None):
        return self.call("schedule.pause", name=name, queue=queue)

    def schedule_resume(self, name, queue=None):
        """Resumes from now: fire times that fell in the pause are not run."""
        return self.call("schedule.resume", name=name, queue=queue)

    def celery_send(self, task, args=None, kwargs=None, queue=None, priority=None, countdown_s=None, eta=None,
                    expires_s=None, id=None):
        """Publishes a task in Celery's format to a Celery queue (through the daemon's Redis, under its
        celery_prefix) for a stock Celery worker to run: celery_send("proj.add", [2, 3], queue="celery").
        eta is a Unix time (int; or use countdown_s), expires_s seconds from now. Needs the submit scope.
        Returns {"task_id", "queue", "key"}; the result is Celery's to read: AsyncResult(task_id)."""
        if eta is not None:
            eta = int(eta)
        return self.call("celery.send", task=task, args=None if args is None else list(args), kwargs=kwargs,
                         queue=queue, priority=priority, countdown_s=countdown_s, eta=eta, expires_s=expires_s,
                         task_id=id)


def from_env(**kw):
    """A Client from $HOPPER_SOCKET or $HOPPER_HOST and $HOPPER_TOKEN (keyword arguments win)."""
    if "socket" not in kw and "host" not in kw:
        if os.environ.get("HOPPER_SOCKET"):
            kw["socket"] = os.environ["HOPPER_SOCKET"]
        elif os.environ.get("HOPPER_HOST"):
            kw["host"] = os.environ["HOPPER_HOST"]
        else:
            kw["socket"] = "/var/lib/hopper/hopper.sock"
    kw.setdefault("token", os.environ.get("HOPPER_TOKEN") or None)
    kw.setdefault("server_key", os.environ.get("HOPPER_SERVER_KEY") or None)
    kw.setdefault("known_hosts", os.environ.get("HOPPER_KNOWN_HOSTS") or None)
    return Client(**kw)
