"""Writes the sse seed corpus: hand-written scenarios encoded the way
`arbitrary` 1.x decodes them (enum tags as u32 scaled by the variant count,
integers little-endian, `Vec` elements each behind a continue byte). Only
fixed-size fields are used. Run from fuzz/: python3 seeds/sse.py"""
import struct

OPS = ["Open", "Post", "Delete", "Raw", "Drop", "Hold", "Send", "Close", "Drain", "Reset", "OwnerChanged",
       "Release", "RequestUrl", "Advance", "AdvanceSecs"]


def tag(i, n):
    return struct.pack("<I", (i * 2**32 + n - 1) // n)


def u8(v): return bytes([v])
def u16(v): return struct.pack("<H", v)
def b(v): return u8(1 if v else 0)
def opt(x): return b"\0" if x is None else b"\1" + x
def vec(items): return b"".join(b"\1" + i for i in items) + b"\0"
def short(n): return tag(0, 3) + u8(n)
def long(n): return tag(1, 3) + u16(n)
def no_id(): return tag(0, 4)
def real(s): return tag(1, 4) + u8(s)
def chosen(s, n): return tag(2, 4) + u8(s) + u16(n)
def sess(s): return tag(0, 3) + u8(s)
def unknown(): return tag(1, 3)
def text(t): return tag(0, 2) + t
def raw_body(bs): return tag(1, 2) + vec([u8(x) for x in bs])


def op(name, *fields):
    return b"\1" + tag(OPS.index(name), len(OPS)) + b"".join(fields)


def open_(url, id_=None, split=None):
    return op("Open", u8(url), id_ or no_id(), opt(None if split is None else u8(split)))


def post(to, body, chunked=False, expect=False, close=False, split=(), reuse=None, cut=None):
    return op("Post", to, body, b(chunked), b(expect), b(close), vec([u8(x) for x in split]),
              opt(None if reuse is None else u8(reuse)), opt(None if cut is None else u16(cut)))


def scenario(name, small, ops):
    open(f"seeds/sse/{name}", "wb").write(u8(1 if small else 0) + b"".join(ops))


scenario("echo", False, [
    open_(0), op("Drain", u8(0), u8(9)), op("Send", u8(0), short(1)), op("Send", u8(0), short(2)),
    post(sess(0), text(short(3))), post(sess(0), text(short(4)), chunked=True, split=[0, 1], reuse=0),
    post(sess(0), raw_body([0xff, 0xfe])), post(unknown(), text(short(5))), op("Drain", u8(0), u8(9)),
    op("AdvanceSecs", u8(16)), op("Close", u8(0), u16(4), u8(3)), op("Drain", u8(0), u8(9)),
    open_(0, real(0)),
])
scenario("resume", False, [
    open_(0), op("Drain", u8(0), u8(9)), op("Send", u8(0), short(1)), op("Hold", u8(0), b(True)),
    op("Send", u8(0), short(2)), op("Drop", u8(0)), op("Send", u8(0), long(300)), op("AdvanceSecs", u8(20)),
    open_(0, real(0), split=30), op("Send", u8(0), short(7)), post(sess(0), text(short(8)), expect=True),
    op("Drain", u8(0), u8(9)), open_(0, chosen(0, 1)), op("Drop", u8(2)), op("AdvanceSecs", u8(31)),
    op("Drain", u8(0), u8(9)), open_(0, real(0)),
])
scenario("gap_small", True, [
    open_(0), op("Drain", u8(0), u8(9)), *[op("Send", u8(0), long(45)) for _ in range(8)], op("Drop", u8(0)),
    op("Send", u8(0), long(45)), open_(0, chosen(0, 1)), op("Drain", u8(0), u8(9)),
])
scenario("queue_full_delete_revoke", True, [
    open_(0), open_(1), op("Drain", u8(0), u8(9)), op("Drain", u8(1), u8(9)),
    post(sess(0), text(short(1))), post(sess(0), text(short(2)), reuse=0), post(sess(0), text(short(3)), reuse=0),
    post(sess(0), text(short(4)), reuse=0), post(sess(0), text(long(60))), post(sess(0), text(short(5)), cut=20),
    op("Drain", u8(0), u8(2)), op("Delete", sess(0), opt(None)), op("Drain", u8(0), u8(9)),
    open_(0, real(0)), op("OwnerChanged", u8(1)), op("Drain", u8(1), u8(9)), open_(1, real(1)),
    op("RequestUrl", u8(1)), open_(2), op("Reset", u8(1)), op("AdvanceSecs", u8(11)),
])
