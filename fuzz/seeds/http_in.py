"""Writes the http_in seed corpus: hand-written scenarios encoded the way
`arbitrary` 1.x decodes them (enum tags as u32 scaled by the variant count,
integers little-endian, `Vec` elements each behind a continue byte). Only
fixed-size fields are used, since strings take their length from the end of
the input. Run from fuzz/: python3 seeds/http_in.py"""
import struct

OPS = ["RequestUrl", "Release", "Life", "Connect", "Send", "Flood", "Raw", "Drain", "Respond", "RespondKey",
       "SetType", "Header", "PeerClosed", "Hold", "Advance", "AdvanceSecs"]


def tag(i, n):
    return struct.pack("<I", (i * 2**32 + n - 1) // n)


def u8(v): return bytes([v])
def u16(v): return struct.pack("<H", v)
def b(v): return u8(1 if v else 0)
def opt(x): return b"\0" if x is None else b"\1" + x
def vec(items): return b"".join(b"\1" + i for i in items) + b"\0"
def short(n): return tag(0, 4) + u8(n)
def long(n): return tag(1, 4) + u16(n)
def raw_txt(bs): return tag(3, 4) + vec([u8(x) for x in bs])
def grant(g): return tag(0, 4) + u8(g)
def unknown(): return tag(1, 4)
def no_body(): return tag(0, 3)
def length(t): return tag(1, 3) + t
def chunked(t, sizes, ext=False, trailer=False, upper=False):
    return tag(2, 3) + t + vec([u8(s) for s in sizes]) + b(ext) + b(trailer) + b(upper)


def req(method=0, target=None, query=False, http10=False, connection=0, expect=False, charset=0, body=None,
        extra=()):
    return (u8(method) + (target or grant(0)) + b(query) + b(http10) + u8(connection) + b(expect) + u8(charset)
            + (body or no_body()) + vec([u8(n) + t for n, t in extra]))


def op(name, *fields):
    return b"\1" + tag(OPS.index(name), len(OPS)) + b"".join(fields)


def send(c, r, splits=(), truncate=None):
    return op("Send", u8(c), r, vec([u8(s) for s in splits]), opt(None if truncate is None else u16(truncate)))


def respond(e, status=0, body=None, s=0):
    return op("Respond", u8(s), u8(e), u8(status), body or short(1))


def drain(s=0): return op("Drain", u8(s), u8(50))
def secs(n): return op("AdvanceSecs", u8(n))


def scenario(name, mode, ops):
    open(f"seeds/http_in/{name}", "wb").write(u8(mode) + b"".join(ops))


GRANT = [op("RequestUrl", u8(0), b(False)), drain()]

scenario("get_post_answer", 0, GRANT + [
    op("Connect", u8(0)), send(0, req(method=0, query=True)), drain(), respond(0),
    send(0, req(method=1, body=length(short(7)), charset=2)), drain(), respond(0, status=1, body=long(40)),
    op("Header", u8(0), u8(0), u8(1)), op("SetType", u8(0), u8(0), u8(5)),
    send(0, req(method=2, body=length(raw_txt([0x63, 0xe9, 0x80])), charset=4)), drain(),
    op("SetType", u8(0), u8(0), u8(5)), op("Header", u8(0), u8(0), u8(0)), op("Header", u8(3), u8(0), u8(3)),
    respond(0, status=9), respond(0), op("RespondKey", u8(1), u8(3)),
])
scenario("pipelined_chunked_continue", 0, GRANT + [
    op("Connect", u8(1)),
    send(0, req(method=1, expect=True, body=chunked(long(100), [1, 3, 2], ext=True, trailer=True))),
    send(0, req(method=3, body=length(short(2))), splits=[3, 0, 9]),
    send(0, req(method=1, connection=1, body=chunked(short(3), [], upper=True))),
    drain(), respond(0), drain(), respond(0, status=2), drain(), respond(0),
])
scenario("in_flight_cap_small", 1, GRANT + [
    op("Connect", u8(0)), op("Connect", u8(1)), op("Connect", u8(2)), op("Connect", u8(3)), op("Connect", u8(0)),
    send(0, req()), send(1, req()), send(2, req()), send(3, req()), send(4, req()), drain(),
    respond(0), op("Connect", u8(0)), send(5, req()), drain(), respond(0), respond(1), respond(2),
])
scenario("revocation", 0, GRANT + [
    op("Connect", u8(0)), op("Connect", u8(0)),
    send(0, req(method=1, body=length(short(1)))), send(1, req(body=chunked(long(20), [1]))), drain(),
    op("Life", u8(0), u8(0)), respond(0), respond(1), op("Connect", u8(0)), send(2, req()),
    op("RequestUrl", u8(1), b(True)), drain(1), op("Connect", u8(2)), send(3, req(target=grant(1))), drain(1),
    op("Release", u8(1), u8(1), b(False)), respond(0, s=1), op("Life", u8(6), u8(0)),
])
scenario("floods", 0, GRANT + [
    op("Connect", u8(0)), op("Flood", u8(0), u8(0), u8(200), b(True), b(False)), secs(11),
    op("Connect", u8(0)), op("Flood", u8(1), u8(0), u8(150), b(False), b(True)), drain(), respond(0),
    op("Connect", u8(0)), op("Flood", u8(2), u8(0), u8(64), b(True), b(True)), drain(),
])
scenario("timeouts_and_gone", 0, GRANT + [
    op("Connect", u8(0)), op("Connect", u8(1)), send(0, req()), send(1, req(method=1, body=length(short(4)))),
    drain(), op("PeerClosed", u8(1)), respond(0), secs(26), respond(1), respond(0),
    send(0, req(http10=True)), secs(30), drain(), respond(0),
])
scenario("never_reads", 1, GRANT + [
    op("Connect", u8(0)), op("Hold", u8(0), b(True)),
    send(0, req()), send(0, req()), send(0, req()), send(0, req()),
    drain(), respond(0, body=long(600)), drain(), respond(0, body=long(600)), drain(), respond(0), secs(5),
    op("Hold", u8(0), b(False)), drain(), respond(0),
])
scenario("slow_and_bad", 0, GRANT + [
    op("Connect", u8(0)), send(0, req(), splits=[0] * 30, truncate=40), secs(3),
    op("Raw", u8(0), vec([u8(x) for x in b"\r\n\r\n"])), op("Connect", u8(1)),
    send(1, req(method=4)), op("Connect", u8(2)), send(2, req(target=unknown())),
    op("Connect", u8(3)), send(3, req(http10=True, body=chunked(short(1), []))),
    op("Connect", u8(0)), send(4, req(extra=[(0, long(300)), (1, short(2))])), drain(), op("Header", u8(0), u8(0), u8(4)),
    secs(12),
])
