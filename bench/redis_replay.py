#!/usr/bin/python3
"""bench/redis_replay.py CAPTURE RDB JOBS LUA_DIR...: the Redis functions' cost per job, in instructions.

CAPTURE is a MONITOR log of one hopperd drain (bench/redis_cost.sh writes it), RDB the Redis state before it
(the pre-filled queue). For each LUA_DIR (a daemon/lua folder; its functions must take the arguments the
capture holds, i.e. the same SPEC), a fresh redis-server under callgrind loads RDB and that library, and the
captured FCALLs are sent again in order. Prints, per LUA_DIR, redis-server's instructions per job (callgrind's
total over the run, divided by JOBS; start-up and loading included, the same for every LUA_DIR) and the
commands per job run inside the functions (INFO commandstats). Instruction counts do not depend on how busy
the machine is, so two Lua variants compare to a fraction of a percent where timed runs differ by 20 %.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ESC = {'n': b'\n', 'r': b'\r', 't': b'\t', '"': b'"', '\\': b'\\', 'a': b'\a', 'b': b'\b'}


def parse_monitor(line):
    """The arguments of one MONITOR line: 'TIME [DB ADDR] "arg" "arg"...' with C-style escapes."""
    s = line[line.index('] ') + 2:].rstrip('\n')
    out, j = [], 0
    while j < len(s):
        if s[j] == ' ':
            j += 1
            continue
        j += 1  # opening quote
        buf = bytearray()
        while s[j] != '"':
            if s[j] == '\\':
                if s[j + 1] == 'x':
                    buf.append(int(s[j + 2:j + 4], 16))
                    j += 4
                else:
                    buf += ESC[s[j + 1]]
                    j += 2
            else:
                buf += s[j].encode('latin-1')
                j += 1
        j += 1
        out.append(bytes(buf))
    return out


def resp(args):
    return b''.join([b'*%d\r\n' % len(args)] + [b'$%d\r\n%s\r\n' % (len(a), a) for a in args])


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile('rb')

    def reply(self):
        line = self.f.readline()
        t = line[:1]
        if t in (b'+', b'-', b':'):
            return line[1:].strip()
        if t == b'$':
            n = int(line[1:])
            return self.f.read(n + 2)[:-2] if n >= 0 else None
        if t == b'*':
            return [self.reply() for _ in range(max(int(line[1:]), 0))]
        raise RuntimeError('bad reply %r' % line)

    def call(self, *args):
        self.s.sendall(resp([a if isinstance(a, bytes) else a.encode() for a in args]))
        return self.reply()


def run_one(cmds, rdb, luadir, jobs):
    lib = b'#!lua name=hopper\n' + b''.join(open(f, 'rb').read() for f in sorted(glob.glob(luadir + '/*.lua')))
    d = tempfile.mkdtemp(prefix='hopper-replay.')
    try:
        shutil.copy(rdb, d + '/dump.rdb')
        sock = d + '/redis.sock'
        p = subprocess.Popen(['valgrind', '--tool=callgrind', '--callgrind-out-file=' + d + '/cg.out',
                              'redis-server', '--port', '0', '--unixsocket', sock, '--dir', d, '--dbfilename',
                              'dump.rdb', '--save', '', '--appendonly', 'no'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(1200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.3)
        c = Conn(sock)
        c.call('FUNCTION', 'LOAD', 'REPLACE', lib)
        c.call('CONFIG', 'RESETSTAT')
        for i in range(0, len(cmds), 50):
            chunk = cmds[i:i + 50]
            c.s.sendall(b''.join(resp(x) for x in chunk))
            for _ in chunk:
                c.reply()
        inner = 0
        for line in c.call('INFO', 'commandstats').decode().splitlines():
            m = re.match(r'cmdstat_(\S+):calls=(\d+)', line)
            if m and m.group(1) not in ('fcall', 'fcall_ro', 'function|load', 'config|resetstat', 'info'):
                inner += int(m.group(2))
        done = int(c.call('HGET', 'hopper:{bench}:stats', 'succeeded') or b'0')
        p.terminate()
        p.wait()
        ir = 0
        for line in open(d + '/cg.out'):
            if line.startswith('summary:') or line.startswith('totals:'):
                ir = int(line.split()[1])
        return ir / jobs, inner / jobs, done
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) < 5:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    cap, rdb, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cmds = [parse_monitor(l) for l in open(cap, encoding='latin-1')]
    cmds = [c for c in cmds if c and c[0].upper() in (b'FCALL', b'FCALL_RO')]
    base = None
    for luadir in sys.argv[4:]:
        ir, inner, done = run_one(cmds, rdb, luadir, jobs)
        ratio = '' if base is None else '  x%.3f of the first' % (ir / base)
        base = base or ir
        print('%-40s %8.0f instructions/job  %5.2f commands/job  (%d of %d jobs succeeded)%s' %
              (luadir, ir, inner, done, jobs, ratio))
    return 0


sys.exit(main())
