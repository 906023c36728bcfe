"""Writes the region_ops seed corpus: hand-written scenarios encoded the way
`arbitrary` 1.x decodes them (enum tags as u32 scaled by the variant count,
integers little-endian, `Vec` elements each behind a continue byte). Only
fixed-size fields are used, since strings take their length from the end of
the input. Run from fuzz/: python3 seeds/region_ops.py"""
import struct

OPS = ["RequestObject", "RequestRegion", "Release", "ReleaseDomain", "Send", "Broadcast", "Close", "Header",
       "Free", "Drain", "Reset", "Removed", "Rezzed", "ChangedRegion", "OwnerChanged", "ObjectRemoved",
       "Restart", "Connect", "Raw", "Frame", "PeerClosed", "Hold", "Advance", "AdvanceSecs"]


def tag(i, n):
    return struct.pack("<I", (i * 2**32 + n - 1) // n)


def u8(v): return bytes([v])
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def opt(b): return b"\0" if b is None else b"\1" + b
def short(n): return tag(0, 3) + u8(n)
def long(n): return tag(1, 3) + u16(n)
def env_sub(d): return tag(0, 5) + u8(d)
def env_uns(d): return tag(1, 5) + u8(d)
def env_msg(d, t): return tag(2, 5) + u8(d) + t
def env_to(o, d, t): return tag(3, 5) + u8(o) + u8(d) + t
def k_text(t): return tag(0, 6) + t
def k_env(e): return tag(1, 6) + e
def k_pong(): return tag(3, 6)
def k_close(): return tag(4, 6) + b"\0"


def op(name, *fields):
    return b"\1" + tag(OPS.index(name), len(OPS)) + b"".join(fields)


def frame(c, kind, split=None, mask=0x11223344):
    return op("Frame", u8(c), kind, opt(None if split is None else u8(split)), u32(mask))


def scenario(name, small, ops):
    open(f"seeds/region_ops/{name}", "wb").write(u8(1 if small else 0) + b"".join(ops))


scenario("object_session", False, [
    op("RequestObject", u8(0), u8(0), opt(None)), op("Drain", u8(0), u8(9)),
    op("Connect", u8(0), u8(0), opt(None)), op("Drain", u8(0), u8(9)),
    frame(0, k_text(short(1))), frame(0, k_text(short(2)), split=1), op("Drain", u8(0), u8(9)),
    op("Send", u8(0), u8(1), short(3)), op("Send", u8(2), u8(1), short(4)), op("Header", u8(0), u8(1), u8(1)),
    op("Header", u8(1), u8(1), u8(3)), op("Close", u8(1), u8(1), u16(1000), u8(3)),
    op("Reset", u8(0)), op("Drain", u8(0), u8(9)), op("Connect", u8(0), u8(1), opt(u8(20))),
    op("Send", u8(0), u8(1), short(5)), op("AdvanceSecs", u8(31)), op("AdvanceSecs", u8(31)),
])
scenario("region_routing", False, [
    op("RequestRegion", u8(0), u8(0), u8(0), opt(None)), op("RequestRegion", u8(2), u8(0), u8(0), opt(u16(8))),
    op("RequestRegion", u8(3), u8(1), u8(0), opt(None)), op("Drain", u8(0), u8(9)), op("Drain", u8(2), u8(9)),
    op("Connect", u8(0), u8(0), opt(None)), op("Connect", u8(0), u8(4), opt(None)),
    frame(0, k_env(env_sub(0))), frame(1, k_env(env_msg(0, short(7)))), frame(1, k_env(env_msg(0, long(40)))),
    frame(0, k_env(env_to(1, 0, short(8)))), frame(0, k_env(env_sub(1))), op("Drain", u8(0), u8(9)),
    op("Drain", u8(2), u8(9)), op("Broadcast", u8(0), u8(0), short(9)), op("Send", u8(2), u8(7), short(1)),
    op("ReleaseDomain", u8(0), u8(0)), frame(1, k_env(env_msg(0, short(2)))), op("Drain", u8(0), u8(9)),
    frame(0, k_env(env_uns(0))), op("Drain", u8(2), u8(9)), op("Close", u8(3), u8(5), u16(4000), u8(2)),
    op("Release", u8(3), u8(0)), op("Restart"), op("Connect", u8(0), u8(0), opt(None)),
    op("Connect", u8(1), u8(0), opt(None)), op("Drain", u8(3), u8(9)),
])
scenario("back_pressure", True, [
    op("RequestObject", u8(1), u8(0), opt(None)), op("Drain", u8(1), u8(9)),
    op("Connect", u8(0), u8(0), opt(None)), op("Hold", u8(0), u8(1)),
] + [op("Send", u8(1), u8(1), long(60)) for _ in range(10)] + [
    op("Drain", u8(1), u8(9)),
] + [op("Send", u8(1), u8(1), long(60)) for _ in range(10)] + [
    frame(0, k_text(short(i))) for i in range(7)
] + [
    op("Drain", u8(1), u8(2)), op("Hold", u8(0), u8(0)), op("Drain", u8(1), u8(20)),
    op("AdvanceSecs", u8(40)), op("AdvanceSecs", u8(40)), op("Drain", u8(1), u8(9)),
])
scenario("lifecycle_mix", True, [
    op("RequestObject", u8(0), u8(0), opt(None)), op("RequestObject", u8(1), u8(1), opt(u16(10))),
    op("RequestObject", u8(2), u8(0), opt(None)), op("RequestRegion", u8(3), u8(2), u8(0), opt(None)),
    op("RequestRegion", u8(4), u8(3), u8(0), opt(None)), op("RequestObject", u8(4), u8(0), opt(u16(9999))),
    op("Drain", u8(0), u8(9)), op("Drain", u8(1), u8(9)), op("Drain", u8(2), u8(9)), op("Drain", u8(3), u8(9)),
    op("Connect", u8(0), u8(0), opt(None)), op("Connect", u8(1), u8(1), opt(None)),
    op("Connect", u8(2), u8(2), opt(None)), op("Connect", u8(3), u8(3), opt(None)), frame(3, k_env(env_sub(2))),
    frame(0, k_text(short(1))), frame(1, k_text(long(30))), frame(2, k_pong()),
    op("OwnerChanged", u8(1)), op("Rezzed", u8(0)), op("Free", u8(0)), op("Drain", u8(0), u8(9)),
    op("Drain", u8(2), u8(9)), op("ChangedRegion", u8(3)), op("ObjectRemoved", u8(2)), op("Removed", u8(3)),
    op("Raw", u8(2), b"\1\x81\1\x80\0"), op("PeerClosed", u8(3)), frame(2, k_close()),
    op("Advance", u16(5000)), op("AdvanceSecs", u8(11)), op("Drain", u8(1), u8(9)),
])
