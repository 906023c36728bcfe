//! SSE clients (SPEC §14, FORMAT.md §5.4 "SSE streams" and D45–D51): a
//! `GET` asking for `text/event-stream`, then the blocks of the stream.
//! Messages go up by `request` (`POST` / `DELETE` of the send URL).

use super::super::lex::{Expr, Op, Seg};
use super::super::parse::Step;
use super::super::wire::{Event, Item, json_member, json_text};
use super::{Res, Runner, bad, miss};

/// The keys of `expect sse`.
const KEYS: [&str; 9] = ["event", "id", "token", "retry", "data", "text", "send", "code", "reason"];

impl Runner {
    /// Whether the step's client (argument 1) is an SSE client.
    pub(super) fn is_sse_client(&self, step: &Step) -> bool {
        let name = Self::name(step, 0);
        self.clients.get(&name).is_some_and(|c| c.reader.sse)
    }

    /// `sse C URL [path=] [query=] [from=] [last-event-id=] [set=]* [header=]* [omit=]* [chunk=]`:
    /// a new connection sending `GET` with `Accept: text/event-stream`
    /// (and `Last-Event-ID`); a 200 answer is read as an event stream.
    pub(super) fn sse(&mut self, step: &Step) -> Res {
        let name = Self::name(step, 0);
        self.open(step, &name)?;
        self.clients.get_mut(&name).expect("just opened").reader.sse = true;
        let url = self.arg(step, 1)?;
        let mut defaults = vec![("Accept", "text/event-stream".to_string())];
        if let Some(id) = self.opt(step, "last-event-id")? {
            defaults.push(("Last-Event-ID", id));
        }
        let head = self.request_head(step, &url, &defaults)?;
        let chunk = self.chunk(step)?;
        self.send(&name, head.as_bytes(), chunk)
    }

    /// `expect sse C [event=M] [id=M] [token=M] [retry=M] [data=M] [text=M] [send=M] [code=M] [reason=M]`.
    pub(super) fn expect_sse(&mut self, step: &Step) -> Res {
        let event = self.next_block(step, "an SSE event")?;
        if event.is_comment() {
            return Err(miss("an SSE event", event.to_string()));
        }
        let (mut fails, mut binds) = (Vec::new(), Vec::new());
        let mut keyed = step.keyed.clone();
        if !keyed.iter().any(|(k, ..)| k == "event") {
            // Unless told otherwise, a message event (no `event` field).
            keyed.insert(0, ("event".into(), Op::Eq, Expr(vec![Seg::Lit("message".into())])));
        }
        let data = event.data.clone().unwrap_or_default();
        for (key, op, value) in keyed {
            let actual = match key.as_str() {
                "event" => Ok(event.name().to_string()),
                "id" => event.id.clone().ok_or_else(|| "no id".to_string()),
                "token" => event
                    .id
                    .as_deref()
                    .and_then(|id| id.rsplit_once('-'))
                    .map(|(token, _)| token.to_string())
                    .ok_or_else(|| "no id of the form {token}-{n}".to_string()),
                "retry" => event.retry.clone().ok_or_else(|| "no retry".to_string()),
                "data" => event.data.clone().ok_or_else(|| "no data".to_string()),
                "text" => json_text(&data),
                "send" | "code" | "reason" => json_member(&data, &key),
                other => return Err(bad(format!("expect sse takes {KEYS:?}, not {other}="))),
            };
            match actual {
                // Checked without a field name: an event id is no script key (a replay repeats it).
                Ok(actual) => {
                    let before = fails.len();
                    self.check("", op, &value, &actual, &mut fails, &mut binds)?;
                    fails[before..].iter_mut().for_each(|f| *f = format!("{key}{f}"));
                }
                Err(why) => fails.push(format!("{key}{op}… ({why})")),
            }
        }
        self.finish(fails, binds, || event.to_string())
    }

    /// `expect heartbeat C [M]`: the next block holds only comments; `M`, if
    /// given, matches their text (lines joined with `\n`).
    pub(super) fn expect_heartbeat(&mut self, step: &Step) -> Res {
        let event = self.next_block(step, "a heartbeat comment")?;
        if !event.is_comment() {
            return Err(miss("a heartbeat comment", event.to_string()));
        }
        let (mut fails, mut binds) = (Vec::new(), Vec::new());
        if let Some((op, value)) = step.pos.get(1).cloned() {
            let text = event.comments.join("\n");
            self.check("", op.unwrap_or(Op::Eq), &value, &text, &mut fails, &mut binds)?;
        }
        let fails = fails.into_iter().map(|f| format!("heartbeat {f}")).collect();
        self.finish(fails, binds, || event.to_string())
    }

    /// The next block on an SSE client's stream.
    fn next_block(&mut self, step: &Step, what: &str) -> Res<Event> {
        let name = self.client_name(step)?;
        if !self.is_sse_client(step) {
            return Err(bad(format!("`{name}` is not an SSE client (open it with `sse`)")));
        }
        match self.read_or_miss(&name, what)? {
            Item::Sse(event) => Ok(event),
            item => Err(miss(what, item.to_string())),
        }
    }
}
