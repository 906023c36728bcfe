//! The list of checks: what each one checks and what it assumes.

use crate::Probe;
use crate::handshake::*;
use crate::http_checks::*;
use crate::lines::*;
use crate::region::*;
use crate::session::*;
use crate::sse::sse_checks;

/// What most frame-level checks assume: nothing beyond a URL that accepts sessions.
pub const LIVE: &str = "the object URL accepts sessions";
/// What the echo checks assume.
pub const ECHO: &str = "the object URL's script sends every text back unchanged (as echo_server's does)";
/// What the region checks assume.
pub const REGION_ECHO: &str = "a script listens on --domain and answers each msg,<domain>,<p> to its sender \
as msg,<domain>,<p> (as echo_server's region script does)";

/// What the HTTP-in checks assume.
pub const HTTP_ECHO: &str = "the HTTP-in URL's script answers by x-path-info as echo_server's does: /status/<n> → n, \
/header/<name> → that header as the script reads it, /method → the method, /hold → never, anything else → 200 with \
the body as the script received it";

/// What a check needs besides `--object-url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    Object,
    Region,
    Http,
    /// `--http-url` and `--http-timeout`.
    HttpTimeout,
    /// `--lines` (SPEC §13 line clients on the object URL's port).
    Lines,
    /// `--lines` and `--region-url`.
    LinesRegion,
    /// `--sse` (SPEC §14 event streams on the object URL).
    Sse,
    /// `--sse` and `--region-url`.
    SseRegion,
}

impl Needs {
    /// How `--list` marks it.
    pub fn flags(self) -> &'static str {
        match self {
            Needs::Object => "",
            Needs::Region => " [--region-url]",
            Needs::Http => " [--http-url]",
            Needs::HttpTimeout => " [--http-url --http-timeout]",
            Needs::Lines => " [--lines]",
            Needs::LinesRegion => " [--lines --region-url]",
            Needs::Sse => " [--sse]",
            Needs::SseRegion => " [--sse --region-url]",
        }
    }
}

/// A check's verdict: `Err` holds why it failed.
pub type Outcome = Result<(), String>;

/// One check.
pub struct Check {
    pub name: &'static str,
    /// The SPEC row it checks.
    pub what: &'static str,
    /// What it takes for granted about the server's scripts or settings.
    pub assumes: &'static str,
    pub needs: Needs,
    pub run: fn(&Probe) -> Outcome,
}

/// SPEC rows a client cannot check without knowing the server's settings or scripts.
pub const NOT_CHECKED: &[(&str, &str)] = &[
    ("sessions-503", "needs the URL's session limit; reaching it would load a live server"),
    ("rate-429", "needs the server's handshake rate; reaching it would lock this address out"),
    ("handshake-timeout", "needs the server's handshake timeout (SPEC default 10 s)"),
    ("idle-ping-1006", "needs the idle interval (SPEC default 30 s) and the script's WS_CLOSE"),
    ("back-pressure", "paused reading, err,<domain>,busy and WS_ERR_BUSY need a script that stops reading"),
    ("script-events", "WS_OPEN, WS_TEXT, WS_CLOSE and send status codes happen inside the simulator"),
    ("revocation", "SPEC §4 (1001 on reset, rez, ..., 404 afterwards) needs lifecycle events in the simulator"),
    ("region-too-large", "err,<domain>,too-large needs a listener whose WS_MAX_MESSAGE is below the cap"),
    ("region-uns-notice", "uns,<domain> to subscribers needs the last listener to stop listening"),
    ("http-inflight-503", "64 requests in flight need a script that holds them; reaching it would load a live server"),
    ("http-rate-429", "needs the server's request rate; reaching it would lock this address out"),
    (
        "http-revocation-503",
        "503 to requests in flight when the URL is revoked needs lifecycle events in the simulator",
    ),
    ("http-413-switch", "413 instead of truncation is a server setting"),
    ("http-content-type", "llSetContentType and CONTENT_TYPE_HTML (owner's viewer only) happen inside the simulator"),
    (
        "lines-limits",
        "\\error 503 / 429, the first-line timeout, the idle \\ping and 1006, back-pressure and revocation's \\close 1001 \
         need the server's settings, a stalled script or lifecycle events, as for WebSocket",
    ),
    (
        "sse-limits",
        "503 + Retry-After (a full queue), heartbeats every 15 s, the resume window (1006), a resume gap (1001), \
         WS_ERR_BUSY while detached and revocation's close event 1001 need a stalled script, the idle interval or \
         lifecycle events",
    ),
];

pub fn checks() -> Vec<Check> {
    fn c(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, needs: Needs::Object, run }
    }
    fn r(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, needs: Needs::Region, run }
    }
    fn h(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, needs: Needs::Http, run }
    }
    fn l(name: &'static str, what: &'static str, assumes: &'static str, run: fn(&Probe) -> Outcome) -> Check {
        Check { name, what, assumes, needs: Needs::Lines, run }
    }
    const HTTP_LIVE: &str = "the HTTP-in URL is live";
    const LINES_LIVE: &str = "the object URL's port takes line clients (SPEC §13)";
    let mut all = vec![
        c("handshake-101", "101 with the correct Sec-WebSocket-Accept", LIVE, handshake_101),
        c(
            "unknown-cap-404",
            "a capability differing in one digit → 404",
            "the mutated capability was never minted",
            unknown_cap_404,
        ),
        c("post-405", "POST (with and without upgrade headers) → 405", LIVE, post_405),
        c("bad-key-400", "missing, short, 15-byte or non-base64 Sec-WebSocket-Key → 400", LIVE, bad_key_400),
        c("missing-connection-400", "no Connection: upgrade → 400", LIVE, missing_connection_400),
        c("missing-upgrade-400", "no Upgrade: websocket → 400", LIVE, missing_upgrade_400),
        c("version-426", "Sec-WebSocket-Version: 8 → 426 with Sec-WebSocket-Version: 13", LIVE, version_426),
        c("plain-get-426", "a GET without upgrade headers → 426", LIVE, plain_get_426),
        c("header-value-431", "a 255-byte header value → 101, 256 bytes → 431", LIVE, header_value_431),
        c("head-8k-431", "a request head over 8 KiB → 431", LIVE, head_431),
        c("text-echo", "text messages reach the script (seen through its echo)", ECHO, text_echo),
        c("path-info-echo", "a URL with path info and a query reaches the same script", ECHO, path_info_echo),
        c(
            "fragmented-text",
            "a fragmented text with a ping between fragments and a split character",
            ECHO,
            fragmented_text,
        ),
        c(
            "oversize-1009",
            "exactly --max-message bytes echo, one more → 1009",
            "the cap is --max-message; the script echoes",
            oversize_1009,
        ),
        c(
            "oversize-header-1009",
            "a frame header announcing more than the cap → 1009 before the payload",
            "the cap is --max-message",
            oversize_header_1009,
        ),
        c(
            "oversize-fragments-1009",
            "fragments that add up to more than the cap → 1009",
            "the cap is --max-message",
            oversize_fragments_1009,
        ),
        c("binary-1003", "a binary message → 1003", LIVE, binary_1003),
        c("invalid-utf8-1007", "invalid UTF-8 in a text message → 1007", LIVE, invalid_utf8_1007),
        c("invalid-utf8-split-1007", "invalid UTF-8 split across fragments → 1007", LIVE, invalid_utf8_split_1007),
        c("unmasked-1002", "an unmasked frame → 1002", LIVE, unmasked_1002),
        c("rsv-bit-1002", "RSV1, RSV2 or RSV3 set (no extension negotiated) → 1002", LIVE, rsv_bit_1002),
        c("reserved-opcode-1002", "reserved opcodes 0x3 and 0xB → 1002", LIVE, reserved_opcode_1002),
        c("control-over-125-1002", "a ping with 126 bytes → 1002", LIVE, control_over_125_1002),
        c("fragmented-control-1002", "a ping without FIN → 1002", LIVE, fragmented_control_1002),
        c(
            "continuation-without-start-1002",
            "a continuation frame with no message started → 1002",
            LIVE,
            continuation_1002,
        ),
        c(
            "message-inside-fragmented-1002",
            "a new text frame inside a fragmented message → 1002",
            LIVE,
            message_inside_fragmented_1002,
        ),
        c(
            "invalid-close-code-1002",
            "close codes 0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000 → 1002",
            LIVE,
            invalid_close_code_1002,
        ),
        c("close-1-byte-1002", "a close payload of 1 byte → 1002", LIVE, close_1_byte_1002),
        c("ping-pong", "ping → pong with the same payload (0, 3 and 125 bytes)", LIVE, ping_pong),
        c(
            "close-echo",
            "close 1000, 3000 and 4999 with reasons → the same close echoed, then the transport closes",
            LIVE,
            close_echo,
        ),
        c("close-empty-echo", "a close without a code → a close without a code (never 1005)", LIVE, close_empty_echo),
        r(
            "region-handshake-101",
            "the region URL answers 101 with the correct Sec-WebSocket-Accept",
            "the region URL is live",
            region_handshake_101,
        ),
        r(
            "region-echo",
            "msg,<domain>,<p> reaches the listener (payloads with commas, newlines, Unicode, empty)",
            REGION_ECHO,
            region_echo,
        ),
        r("region-sub", "sub,<domain> is accepted without an error", REGION_ECHO, region_sub),
        r("region-uns", "uns,<domain> after sub is accepted without an error", REGION_ECHO, region_uns),
        r(
            "region-no-listener",
            "msg,<unknown domain>,x → err,<domain>,no-listener",
            "no script listens on the made-up domain",
            region_no_listener,
        ),
        r(
            "region-to-no-listener",
            "to,<unknown object>,<domain>,x → err,<domain>,no-listener",
            "no object has the made-up key",
            region_to_no_listener,
        ),
        r(
            "region-bad-frame",
            "malformed heads → err,,bad-frame, and the connection stays open",
            REGION_ECHO,
            region_bad_frame,
        ),
        h(
            "http-unknown-cap-404",
            "an HTTP-in capability differing in one digit → 404",
            HTTP_LIVE,
            http_unknown_cap_404,
        ),
        h(
            "http-method-405",
            "PATCH, HEAD and OPTIONS → 405 with Allow: GET, POST, PUT, DELETE",
            HTTP_LIVE,
            http_method_405,
        ),
        h("http-head-431", "a request head over 8 KiB → 431", HTTP_LIVE, http_head_431),
        h(
            "http-body-echo",
            "POST and PUT bodies reach the script byte for byte; answers are text/plain; charset=utf-8",
            HTTP_ECHO,
            http_body_echo,
        ),
        h(
            "http-body-2048",
            "the script sees the first 2048 bytes of UTF-8, cut on a character boundary",
            HTTP_ECHO,
            http_body_2048,
        ),
        h(
            "http-latin1-default",
            "a body with no charset is ISO-8859-1, transcoded to UTF-8",
            HTTP_ECHO,
            http_latin1_default,
        ),
        h(
            "http-utf8-declared",
            "a body declared charset=utf-8 reaches the script unchanged",
            HTTP_ECHO,
            http_utf8_declared,
        ),
        h(
            "http-invalid-utf8-fffd",
            "bytes invalid in the declared UTF-8 become U+FFFD",
            HTTP_ECHO,
            http_invalid_utf8_fffd,
        ),
        h("http-chunked", "a chunked body is reassembled, with the same 2048-byte cut", HTTP_ECHO, http_chunked),
        h("http-expect-100", "Expect: 100-continue → 100 Continue before the body is sent", HTTP_ECHO, http_expect_100),
        h("http-keep-alive", "requests one after another on one keep-alive connection", HTTP_ECHO, http_keep_alive),
        h(
            "http-pipelining",
            "pipelined requests answered in order, the connection kept open",
            HTTP_ECHO,
            http_pipelining,
        ),
        h(
            "http-connection-close",
            "Connection: close → the answer, then the connection closes",
            HTTP_ECHO,
            http_connection_close,
        ),
        h("http-10-close", "an HTTP/1.0 request → the answer, then the connection closes", HTTP_ECHO, http_10_close),
        h("http-status", "llHTTPResponse's status passes through (418, 201, 404, 599)", HTTP_ECHO, http_status),
        h("http-status-500", "a status outside 100..=599 (700, 99, -1, 1000) → 500", HTTP_ECHO, http_status_500),
        h(
            "http-header-readback",
            "llGetHTTPHeader reads request headers by lower-case name; \"\" when absent",
            HTTP_ECHO,
            http_header_readback,
        ),
        h("http-header-255", "header values (x-query-string too) are cut to 255 bytes", HTTP_ECHO, http_header_255),
        h(
            "http-path-info",
            "x-path-info, x-query-string, x-script-url (no trailing /) and x-remote-ip have the SPEC's shapes",
            HTTP_ECHO,
            http_path_info,
        ),
        h("http-method", "the script sees GET, POST, PUT and DELETE as sent", HTTP_ECHO, http_method),
        Check {
            name: "http-hold-504",
            what: "a request the script never answers → 504 after --http-timeout",
            assumes: "the server's HTTP-in timeout is --http-timeout; the script never answers /hold",
            needs: Needs::HttpTimeout,
            run: http_hold_504,
        },
        l("lines-echo", "each line is one message: lines echo one by one, with path info too", ECHO, lines_echo),
        l(
            "lines-escapes",
            "LF, CR and backslash travel as \\n, \\r, \\\\ both ways; the empty line; \\\\ping is a message",
            ECHO,
            lines_escapes,
        ),
        l("lines-crlf", "a CR before LF is dropped (first line too), any other CR kept", ECHO, lines_crlf),
        l("lines-split", "a line split across writes, inside its characters too, is one message", ECHO, lines_split),
        l(
            "lines-oversize-1009",
            "a line of --max-message bytes echoes, one more → \\close 1009, also before the line ends",
            "the cap is --max-message; the script echoes",
            lines_oversize_1009,
        ),
        l(
            "lines-invalid-utf8-1007",
            "a line that is not UTF-8 → \\close 1007, then close",
            LINES_LIVE,
            lines_invalid_utf8_1007,
        ),
        l(
            "lines-unknown-404",
            "a first line with a mutated capability, or no URL's path → \\error 404, then close",
            "the mutated capability was never minted",
            lines_unknown_404,
        ),
        l(
            "lines-bad-first-line-400",
            "a first line not UTF-8, or 9000 bytes without a newline → \\error 400, then close",
            LINES_LIVE,
            lines_bad_first_line_400,
        ),
        l("lines-ping-pong", "\\ping → \\pong; \\pong is no message", ECHO, lines_ping_pong),
        l(
            "lines-close-echo",
            "\\close 3000 bye now, \\close 4999 and \\close alone (1000) → echoed, then close",
            LINES_LIVE,
            lines_close_echo,
        ),
        Check {
            name: "lines-region",
            what: "the region endpoint over lines: sub, msg (escaped payloads), err no-listener and bad-frame, uns",
            assumes: REGION_ECHO,
            needs: Needs::LinesRegion,
            run: lines_region,
        },
    ];
    all.extend(sse_checks());
    all.push(c(
        "no-reserved-close-codes",
        "no close frame the server sent carried 1005, 1006 or 1015",
        "run last; judges every close frame seen",
        no_reserved_close_codes,
    ));
    all
}
