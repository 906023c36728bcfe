//! Line clients (SPEC §13): the first line names the URL, then the
//! connection is a session like any other (see `crate::line` for the wire).

use std::time::Instant;

use super::Region;
use super::input::Pump;
use crate::conns::Kind;
use crate::index::ConnIdx;
use crate::line;
use crate::session::Headers;
use crate::transport::Transport;
use crate::url;

impl Region {
    /// The first line of a connection that started with `/`, complete or not.
    pub(super) fn line_head(&mut self, now: Instant, idx: ConnIdx, buf: Vec<u8>) {
        let Some(c) = self.conns.get_mut(idx) else { return };
        let remote = c.remote;
        let Some(end) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() >= self.config.max_request_head {
                return self.line_refuse(idx, 400);
            }
            return c.inbuf.set(&buf);
        };
        let first = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
        let Ok(path) = std::str::from_utf8(first) else { return self.line_refuse(idx, 400) };
        if !self.rate.allow(now, remote) {
            return self.line_refuse(idx, 429);
        }
        let Some((target, resolved)) = url::parse_target(path).and_then(|t| Some((t, self.resolve_ws(t.cap)?))) else {
            return self.line_refuse(idx, 404);
        };
        let headers = Headers::new([target.path_info, target.query, "", "", ""]);
        let Some(session) = self.new_session(now, idx, resolved, Transport::Lines, headers) else {
            return self.line_refuse(idx, 503);
        };
        self.conns.set_kind(idx, Kind::Session(Box::new(session)));
        if let Some(c) = self.conns.get_mut(idx) {
            c.timer = None;
        }
        self.arm(idx);
        // Lines may follow the first one in the same read.
        self.pump(idx, &buf[end + 1..], Pump::Read);
    }

    /// `\error <status> <reason>`, then close.
    fn line_refuse(&mut self, idx: ConnIdx, status: u16) {
        if let Some(c) = self.conns.get_mut(idx) {
            c.inbuf.clear();
        }
        self.queue(idx, line::error(status));
        self.close_now(idx);
    }
}
