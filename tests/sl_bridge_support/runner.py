"""Runs an LSL script with lummao; the grid's side comes over stdin/stdout.

usage: runner.py SCRIPT.lsl BRIDGE SECRET [secure]

The script's settings block (`string BRIDGE = "...";`, `string SECRET = "...";`,
`integer SECURE = FALSE;`) gets BRIDGE, SECRET and, with `secure`, TRUE;
nothing else in it is changed.

One JSON object per line. From the grid (stdin):
  {"event": "http_request", "id": K, "method": M, "body": B}
  {"event": "on_rez", "param": N} / {"event": "changed", "change": N}
  {"reply": SEQ, "value": V}          answers a request below
To the grid (stdout):
  {"op": "request_url", "seq": SEQ, "secure": B}   llRequestURL / llRequestSecureURL (reply: the request key)
  {"op": "release_url", "url": U}     llReleaseURL
  {"op": "respond", "id": K, "status": S, "body": B}   llHTTPResponse
  {"op": "header", "seq": SEQ, "id": K, "name": N}      llGetHTTPHeader
  {"op": "say", "text": T}            llOwnerSay
  {"op": "http_out", "url": U, "status": S, "body": B}  an llHTTPRequest's answer (for the test to see)
  {"op": "error", "text": T}          an exception in an event handler
llHTTPRequest itself goes over real HTTP (aiohttp); llSetTimerEvent is lummao's.
"""

import asyncio
import json
import re
import sys
import traceback
import uuid

import aiohttp
import lummao
from lummao import Key, TimerScriptExtender

# LSL's llHTTPRequest option numbers.
HTTP_METHOD, HTTP_MIMETYPE, HTTP_BODY_MAXLENGTH, HTTP_VERIFY_CERT = 0, 1, 2, 3
HTTP_VERBOSE_THROTTLE, HTTP_CUSTOM_HEADER, HTTP_PRAGMA_NO_CACHE = 4, 5, 6
# Second Life's default HTTP_BODY_MAXLENGTH.
BODY_MAXLENGTH = 2048


def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Grid(lummao.ScriptExtender):
    """The built-in functions the grid serves, and llHTTPRequest."""

    def __init__(self):
        super().__init__()
        self.seq = 0
        self.waiting = {}
        self.http = None

    def extend_script(self, script):
        super().extend_script(script)
        b = script.builtin_funcs
        b["llRequestURL"] = self.request_url
        b["llRequestSecureURL"] = self.request_secure_url
        b["llReleaseURL"] = lambda url: send({"op": "release_url", "url": str(url)})
        b["llHTTPResponse"] = lambda id, status, body: send(
            {"op": "respond", "id": str(id), "status": int(status), "body": str(body)})
        b["llGetHTTPHeader"] = self.header
        b["llOwnerSay"] = lambda text: send({"op": "say", "text": str(text)})
        b["llHTTPRequest"] = self.http_request

    async def ask(self, obj):
        self.seq += 1
        obj["seq"] = self.seq
        future = asyncio.get_running_loop().create_future()
        self.waiting[self.seq] = future
        send(obj)
        return await future

    def answered(self, seq, value):
        future = self.waiting.pop(seq, None)
        if future is not None and not future.done():
            future.set_result(value)

    async def request_url(self):
        return Key(await self.ask({"op": "request_url", "secure": False}))

    async def request_secure_url(self):
        return Key(await self.ask({"op": "request_url", "secure": True}))

    async def header(self, id, name):
        return str(await self.ask({"op": "header", "id": str(id), "name": str(name)}))

    async def http_request(self, url, options, body):
        method, mimetype, headers, maxlength = "GET", "text/plain;charset=utf-8", {}, BODY_MAXLENGTH
        options = list(options)
        while options:
            name = options.pop(0)
            if name == HTTP_METHOD:
                method = options.pop(0)
            elif name == HTTP_MIMETYPE:
                mimetype = options.pop(0)
            elif name == HTTP_BODY_MAXLENGTH:
                maxlength = int(options.pop(0))
            elif name == HTTP_CUSTOM_HEADER:
                header = options.pop(0)
                headers[header] = options.pop(0)
            elif name in (HTTP_VERIFY_CERT, HTTP_VERBOSE_THROTTLE, HTTP_PRAGMA_NO_CACHE):
                options.pop(0)
            else:
                raise ValueError(f"llHTTPRequest option {name}")
        if method != "GET":
            headers["Content-Type"] = mimetype
        request_id = Key(str(uuid.uuid4()))
        self.create_publisher_task(self.perform(request_id, method, str(url), headers, str(body), maxlength))
        return request_id

    async def perform(self, request_id, method, url, headers, body, maxlength):
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        try:
            data = body.encode("utf-8") if method != "GET" else None
            async with self.http.request(method, url, data=data, headers=headers) as resp:
                status, text = resp.status, (await resp.read()).decode("utf-8", "replace")
        except Exception as e:  # the grid answers 499 when the request fails
            status, text = 499, f"{type(e).__name__}: {e}"
        send({"op": "http_out", "url": url, "status": status, "body": text})
        self.script.queue_event("http_response", (request_id, status, [], text[:maxlength]))


def load(path, bridge, secret, secure=""):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    settings = (
        (r'^string BRIDGE = "[^"]*";', 'string BRIDGE = "%s";' % bridge),
        (r'^string SECRET = "[^"]*";', 'string SECRET = "%s";' % secret),
        (r'^integer SECURE = FALSE;', "integer SECURE = %s;" % ("TRUE" if secure == "secure" else "FALSE")),
    )
    for pattern, line in settings:
        src, n = re.subn(pattern, line, src, flags=re.M)
        if n != 1:
            sys.exit(f"runner: no settings line {pattern} in {path}")
    return lummao.compile_script(src)


async def main():
    script = load(*sys.argv[1:5])
    grid = Grid()
    grid.extend_script(script)
    TimerScriptExtender().extend_script(script)
    wake = asyncio.Event()
    queue_event = script.queue_event

    def queued(*args, **kwargs):
        queue_event(*args, **kwargs)
        wake.set()

    script.queue_event = queued

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def read_grid():
        while True:
            line = await reader.readline()
            if not line:
                # The grid is gone: so is the script.
                loop.stop()
                return
            msg = json.loads(line)
            if "reply" in msg:
                grid.answered(msg["reply"], msg["value"])
            elif msg["event"] == "http_request":
                script.queue_event("http_request", (Key(msg["id"]), msg["method"], msg["body"]))
            elif msg["event"] == "on_rez":
                script.queue_event("on_rez", (int(msg["param"]),))
            elif msg["event"] == "changed":
                script.queue_event("changed", (int(msg["change"]),))

    asyncio.ensure_future(read_grid())
    # One event at a time, as LSL runs them.
    while True:
        while script.event_queue:
            try:
                await script.execute_one()
            except Exception:
                send({"op": "error", "text": traceback.format_exc()})
        wake.clear()
        if not script.event_queue:
            await wake.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except RuntimeError:
        # loop.stop() at the grid's end of input
        pass
