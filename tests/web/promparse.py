"""A strict parser of Prometheus's text exposition format 0.0.4, for the metrics tests: every line is a
comment (# HELP / # TYPE / other), a sample, or empty; names and labels match the format's grammar; label
values are properly escaped; values are floats; a family's TYPE comes before its samples and once; samples of
a family are contiguous; histograms have cumulative buckets ending in le="+Inf" equal to _count, and _sum."""
import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class Error(Exception):
    pass


def parse_labels(s, i, lineno):
    labels = {}
    assert s[i] == "{"
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise Error("line %d: bad label name at %r" % (lineno, s[i:]))
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise Error("line %d: label %s: want =\"" % (lineno, name))
        i += 2
        val = []
        while s[i] != '"':
            if s[i] == "\\":
                nxt = s[i + 1]
                if nxt not in '\\"n':
                    raise Error("line %d: bad escape \\%s" % (lineno, nxt))
                val.append({"n": "\n"}.get(nxt, nxt))
                i += 2
            elif s[i] == "\n":
                raise Error("line %d: newline in a label value" % lineno)
            else:
                val.append(s[i])
                i += 1
        i += 1
        if name in labels:
            raise Error("line %d: label %s twice" % (lineno, name))
        labels[name] = "".join(val)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise Error("line %d: want , or } after a label" % lineno)


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ("histogram", "summary"):
            return name[:-len(suffix)]
    return name


def parse(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}; raises Error."""
    if not text.endswith("\n"):
        raise Error("the text does not end with a newline")
    fams, types, order, done = {}, {}, [], set()
    current = None
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    raise Error("line %d: bad metric name %r" % (lineno, name))
                f = fams.setdefault(name, {"type": "untyped", "help": None, "samples": []})
                if parts[1] == "TYPE":
                    if name in types:
                        raise Error("line %d: second TYPE for %s" % (lineno, name))
                    if f["samples"]:
                        raise Error("line %d: TYPE of %s after its samples" % (lineno, name))
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise Error("line %d: bad TYPE line" % lineno)
                    types[name] = f["type"] = parts[3]
                else:
                    if f["help"] is not None:
                        raise Error("line %d: second HELP for %s" % (lineno, name))
                    f["help"] = parts[3] if len(parts) == 4 else ""
            continue
        m = NAME.match(line)
        if not m:
            raise Error("line %d: not a sample: %r" % (lineno, line))
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line + "\n", i, lineno)
        rest = line[i:]
        if not rest.startswith(" "):
            raise Error("line %d: want a space before the value" % lineno)
        fields = rest[1:].split(" ")
        if len(fields) not in (1, 2):
            raise Error("line %d: want value [timestamp]" % lineno)
        try:
            value = float(fields[0])
        except ValueError:
            raise Error("line %d: value %r is not a float" % (lineno, fields[0]))
        fam = family_of(name, types)
        if fam != current:
            if fam in done:
                raise Error("line %d: samples of %s are not contiguous" % (lineno, fam))
            if current is not None:
                done.add(current)
            current = fam
        f = fams.setdefault(fam, {"type": "untyped", "help": None, "samples": []})
        if f["type"] == "counter" and (value < 0 or math.isnan(value)):
            raise Error("line %d: counter %s is negative" % (lineno, name))
        f["samples"].append((name, labels, value))
        order.append(fam)
    for fam, f in fams.items():
        if f["type"] == "histogram":
            check_histogram(fam, f["samples"])
        seen = set()
        for name, labels, _ in f["samples"]:
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                raise Error("%s: sample %s%s twice" % (fam, name, labels))
            seen.add(key)
    return fams


def check_histogram(fam, samples):
    groups = {}
    for name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        groups.setdefault(key, {"buckets": [], "sum": None, "count": None})
        g = groups[key]
        if name == fam + "_bucket":
            if "le" not in labels:
                raise Error("%s: a bucket without le" % fam)
            g["buckets"].append((float(labels["le"]), value))
        elif name == fam + "_sum":
            g["sum"] = value
        elif name == fam + "_count":
            g["count"] = value
        else:
            raise Error("%s: unexpected sample %s" % (fam, name))
    for key, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise Error("%s%s: no le=\"+Inf\" bucket last" % (fam, key))
        if [x[0] for x in b] != sorted(x[0] for x in b):
            raise Error("%s%s: buckets out of order" % (fam, key))
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise Error("%s%s: buckets are not cumulative" % (fam, key))
        if g["count"] is None or g["sum"] is None or g["count"] != b[-1][1]:
            raise Error("%s%s: _count missing or not the +Inf bucket" % (fam, key))
