//! The server-sent events wire (SPEC §14, FORMAT.md §5.4 "SSE streams"):
//! the blocks of an event stream, read as `EventSource` reads them.

use super::{Item, Mode, Reader};

/// One block of an event stream: the fields written (the last of each, `data`
/// lines joined with `\n`) and its comments. `None`: the field is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    /// Comment lines (`:` and one space removed), in order.
    pub comments: Vec<String>,
}

impl Event {
    /// Whether the block has no field, only comments.
    pub fn is_comment(&self) -> bool {
        self.id.is_none() && self.event.is_none() && self.data.is_none() && self.retry.is_none()
    }

    /// The event's name as `EventSource` dispatches it: `message` without an `event` field.
    pub fn name(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_comment() {
            return write!(f, "sse comment {:?}", self.comments.join("\n"));
        }
        write!(f, "sse event={:?}", self.name())?;
        for (name, value) in [("id", &self.id), ("retry", &self.retry), ("data", &self.data)] {
            if let Some(v) = value {
                write!(f, " {name}={v:?}")?;
            }
        }
        Ok(())
    }
}

impl Reader {
    /// The next block of an event stream: lines ending in `\n` (a `\r`
    /// before it dropped), a block ending at an empty line.
    pub(super) fn sse_event(&mut self) -> Option<Item> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
        let end = end.or_else(|| self.buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, 4)));
        let (at, len) = end?;
        let block: Vec<u8> = self.buf.drain(..at + len).take(at).collect();
        let Ok(block) = String::from_utf8(block) else {
            self.mode = Mode::Done;
            return Some(Item::Violation("an event stream that is not UTF-8".into()));
        };
        let mut event = Event::default();
        for line in block.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.contains('\r') {
                return Some(Item::Violation(format!("a lone CR in the event stream line {line:?}")));
            }
            if let Some(comment) = line.strip_prefix(':') {
                event.comments.push(comment.strip_prefix(' ').unwrap_or(comment).to_string());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "id" => event.id = Some(value),
                "event" => event.event = Some(value),
                "retry" => event.retry = Some(value),
                "data" => {
                    event.data = Some(match event.data.take() {
                        Some(before) => format!("{before}\n{value}"),
                        None => value,
                    })
                }
                other => return Some(Item::Violation(format!("an unknown event stream field {other:?}"))),
            }
        }
        Some(Item::Sse(event))
    }
}

/// `data` read as a JSON string.
pub fn json_text(data: &str) -> Result<String, String> {
    serde_json::from_str::<String>(data).map_err(|e| format!("data {data:?} is not a JSON string ({e})"))
}

/// Member `name` of `data` read as a JSON object, as text (a string's
/// value, a number's digits).
pub fn json_member(data: &str, name: &str) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|e| format!("data {data:?} is not JSON ({e})"))?;
    match value.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!("data {data:?}: {name} is {other}, not a string or number")),
        None => Err(format!("data {data:?} has no member {name:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks() {
        let mut r = Reader { mode: Mode::Events, ..Reader::default() };
        r.buf.extend_from_slice(b"retry: 2000\nid: t-0\nevent: session\ndata: {\"send\":\"/x/\"}\n\n: heartbeat\n\n");
        r.buf.extend_from_slice(b"id: t-1\ndata: a\ndata:b\n\nid: t-2\ndata: \"part");
        let Some(Item::Sse(first)) = r.next() else { panic!() };
        assert_eq!((first.name(), first.retry.as_deref(), first.id.as_deref()), ("session", Some("2000"), Some("t-0")));
        assert_eq!(json_member(first.data.as_deref().unwrap(), "send").unwrap(), "/x/");
        let Some(Item::Sse(beat)) = r.next() else { panic!() };
        assert!(beat.is_comment() && beat.comments == ["heartbeat"]);
        let Some(Item::Sse(two)) = r.next() else { panic!() };
        assert_eq!((two.name(), two.data.as_deref()), ("message", Some("a\nb")));
        assert_eq!(r.next(), None);
        assert_eq!(json_text("\"a\\r\\n\\\"\"").unwrap(), "a\r\n\"");
        assert!(json_text("{}").is_err());
    }
}
