"""Writes the lines seed corpus: hand-written scenarios encoded the way
`arbitrary` 1.x decodes them (enum tags as u32 scaled by the variant count,
integers little-endian, every `Vec` element behind a continue byte). Text
goes in `Vec<u8>` fields (`Line::Raw`, `Start::Raw`, `Line::Partial`), since
strings take their length from the end of the input. Run from fuzz/:
python3 seeds/lines.py"""
import struct

OPS = ["Connect", "Lines", "Bytes", "Frame", "Send", "Broadcast", "Close", "DrainObject", "DrainRegion",
       "ResetObject", "ResetRegion", "ReleaseObject", "ReleaseDomain", "Rezzed", "ChangedRegion", "OwnerChanged",
       "ObjectRemoved", "Restart", "RequestObject", "RequestRegion", "PeerClosed", "Hold", "Advance", "AdvanceSecs"]
TARGETS = ["Object", "OldObject", "Region", "OldRegion", "Http", "Nowhere"]
LINES = ["Text", "Raw", "Crlf", "Long", "Ping", "Pong", "Close", "Partial"]


def tag(i, n):
    return struct.pack("<I", (i * 2**32 + n - 1) // n)


def u8(v): return bytes([v])
def u16(v): return struct.pack("<H", v)
def vec(items): return b"".join(b"\1" + i for i in items) + b"\0"
def byts(b): return vec([bytes([x]) for x in b])
def target(name, i=None): return tag(TARGETS.index(name), 6) + (b"" if i is None else u8(i))
def short(n): return tag(0, 3) + u8(n)
def long(n): return tag(1, 3) + u16(n)


def line(name, *fields):
    return tag(LINES.index(name), 8) + b"".join(fields)


def raw(text): return line("Raw", byts(text))
def op(name, *fields): return b"\1" + tag(OPS.index(name), len(OPS)) + b"".join(fields)
def connect_line(t, lines, sizes=b""): return op("Connect", tag(0, 5) + t + b"\0" + vec(lines), byts(sizes))
def connect_raw(b, sizes=b""): return op("Connect", tag(4, 5) + byts(b), byts(sizes))
def lines(c, ls, sizes=b""): return op("Lines", u8(c), vec(ls), byts(sizes))


def scenario(name, small, serve, ops):
    open(f"seeds/lines/{name}", "wb").write(u8(small) + u8(serve) + b"".join(ops))


scenario("echo", 0, 0, [
    connect_line(target("Object"), [raw(b"hello"), raw(b"a\\nb\\\\c\\r"), line("Ping"), line("Long", u16(40))]),
    op("DrainObject", u8(9)), op("Send", u8(0), short(3)), op("Send", u8(0), long(30)),
    lines(0, [raw(b"split across reads"), raw(b"crlf\r"), line("Partial", byts(b"no newline"))], b"\x02\x05"),
    op("DrainObject", u8(9)), op("Close", u8(0), u16(4000), u8(2)), op("DrainObject", u8(9)),
])
scenario("caps", 1, 0, [
    connect_line(target("Object"), [raw(b"ok"), line("Long", u16(17))]), op("DrainObject", u8(9)),
    connect_line(target("Object"), [raw(b"\xc3(")]), op("DrainObject", u8(9)),
    connect_line(target("Object"), [line("Partial", byts(b"b" * 40))]), op("DrainObject", u8(9)),
    connect_line(target("Object"), [raw(b"\\close 3001 done")]), op("DrainObject", u8(9)),
])
scenario("refusals", 0, 0, [
    connect_line(target("Nowhere"), [raw(b"x")]), connect_line(target("Http"), []),
    connect_raw(b"/\xff\n"), op("ReleaseObject"), connect_line(target("OldObject", 0), [raw(b"late")]),
    op("RequestObject"), op("DrainObject", u8(9)), connect_line(target("Object"), [raw(b"new")]),
    op("DrainObject", u8(9)),
])
scenario("lifecycle", 1, 0, [
    connect_line(target("Object"), [raw(b"m%d" % i) for i in range(8)]), op("DrainObject", u8(2)),
    op("ResetObject"), op("DrainObject", u8(9)), op("RequestObject"), op("DrainObject", u8(9)),
    connect_line(target("Object"), [raw(b"a")]), op("Rezzed"), op("RequestObject"), op("DrainObject", u8(9)),
    connect_line(target("Object"), [raw(b"b")]), op("OwnerChanged"), op("RequestObject"),
    connect_line(target("Object"), []), op("ChangedRegion"), op("RequestObject"),
    connect_line(target("Object"), []), op("ObjectRemoved"), op("RequestObject"), op("DrainObject", u8(9)),
    op("Restart"), op("RequestObject"), op("RequestRegion"), op("DrainObject", u8(9)), op("DrainRegion", u8(9)),
])
scenario("region", 0, 0, [
    connect_line(target("Region"), [raw(b"sub,echo"), raw(b"msg,echo,hi\\nthere"), raw(b"msg,nobody,x"),
                                    raw(b"nonsense")]),
    op("DrainRegion", u8(9)), op("Broadcast", short(4)), op("ResetRegion"), op("Broadcast", short(5)),
    op("DrainRegion", u8(9)), op("RequestRegion"), op("DrainRegion", u8(9)),
    lines(0, [raw(b"sub,echo"), raw(b"msg,echo,again")]), op("DrainRegion", u8(9)), op("ReleaseDomain"),
    lines(0, [raw(b"msg,echo,gone")]), op("DrainRegion", u8(9)), op("Restart"),
    connect_line(target("OldRegion", 0), [raw(b"sub,echo")]),
])
scenario("idle", 0, 0, [
    connect_line(target("Object"), [raw(b"x")]), op("DrainObject", u8(9)), op("AdvanceSecs", u8(31)),
    lines(0, [line("Pong")]), op("AdvanceSecs", u8(29)), op("AdvanceSecs", u8(61)), op("DrainObject", u8(9)),
])
scenario("paused", 1, 0, [
    connect_line(target("Object"), [raw(b"m%d" % i) for i in range(20)]), op("Hold", u8(0), u8(1)),
    op("Send", u8(0), short(1)), op("DrainObject", u8(3)), op("DrainObject", u8(3)),
    op("Send", u8(0), long(14)), op("Hold", u8(0), u8(0)), op("DrainObject", u8(30)), op("PeerClosed", u8(0)),
])
scenario("sniffing", 0, 1, [
    connect_raw(b"GET $o HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", b"\x03"),
    connect_raw(b"POST $hx HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"),
    op("DrainObject", u8(9)), connect_raw(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n"),
    connect_raw(b"$o\nline\n", b"\x00"), connect_raw(b"/ $h HTTP/1.1\r\n\r\n"), connect_raw(b"$r\nsub,echo\n"),
    op("DrainObject", u8(9)), op("DrainRegion", u8(9)),
])
