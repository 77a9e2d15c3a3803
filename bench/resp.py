"""resp: the benchmarks' tiny RESP client (stdlib only; there is no PyPI here, and Debian's python3-redis is
not needed to time hopper): bench/run.sh, bench/limits.sh and bench/peers/compare.py share it. It counts
the commands it sends, so a benchmark can subtract its own from Redis's commandstats."""
import collections
import socket


class Redis:
    def __init__(self, addr):
        """addr: a unix socket path, or a (host, port) pair."""
        family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        self.s = socket.socket(family, socket.SOCK_STREAM)
        self.s.connect(addr)
        self.f = self.s.makefile('rb')
        self.sent = collections.Counter()

    def send(self, *args):
        out = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b'$%d\r\n%s\r\n' % (len(a), a))
        self.s.sendall(b''.join(out))
        self.sent[str(args[0]).lower()] += 1

    def read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError('redis closed the connection')
        t, rest = line[:1], line[1:-2]
        if t == b'+':
            return rest.decode()
        if t == b'-':
            raise RuntimeError(rest.decode())
        if t == b':':
            return int(rest)
        if t == b'$':
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode()
        if t == b'*':
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError('bad reply %r' % line)

    def cmd(self, *args):
        self.send(*args)
        return self.read()
