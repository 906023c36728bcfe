//! Line clients (SPEC §13, FORMAT.md §5.4 "Line clients" and D37–D44): a
//! connection whose first byte is `/`, its first line a URL's path, then one
//! message per line.

use super::super::lex::Op;
use super::super::parse::Step;
use super::super::wire::{Item, Mode, escape_line, parse_hex};
use super::{Res, Runner, bad, miss};

impl Runner {
    /// Whether the step's client (argument 1) is a line client.
    pub(super) fn is_line_client(&self, step: &Step) -> bool {
        let name = Self::name(step, 0);
        self.clients.get(&name).is_some_and(|c| c.reader.mode == Mode::Lines)
    }

    /// `lines C [URL] [path=] [query=] [from=] [eol=] [chunk=]`: a new
    /// connection read as lines; with a URL it sends the URL's path, `path=`,
    /// `?query`, then `eol` (default `\n`).
    pub(super) fn lines(&mut self, step: &Step) -> Res {
        let name = Self::name(step, 0);
        self.open(step, &name)?;
        self.clients.get_mut(&name).expect("just opened").reader.mode = Mode::Lines;
        if step.pos.len() < 2 {
            for key in ["path", "query", "eol"] {
                if step.keyed.iter().any(|(k, ..)| k == key) {
                    return Err(bad(format!("{key}= needs a URL")));
                }
            }
            return Ok(());
        }
        let url = self.arg(step, 1)?;
        let mut target = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or_else(|| "/".to_string(), |i| rest[i..].to_string()),
            None => url,
        };
        target.push_str(&self.opt(step, "path")?.unwrap_or_default());
        if let Some(query) = self.opt(step, "query")? {
            target = format!("{target}?{query}");
        }
        target.push_str(&self.opt(step, "eol")?.unwrap_or_else(|| "\n".into()));
        let chunk = self.chunk(step)?;
        self.send(&name, target.as_bytes(), chunk)
    }

    /// `line C STR` / `line C hex=HEX`: the bytes as written, then `\n`.
    pub(super) fn line(&mut self, step: &Step) -> Res {
        let name = self.client_name(step)?;
        if !self.is_line_client(step) {
            return Err(bad(format!("`{name}` is not a line client (open it with `lines`)")));
        }
        let mut bytes = match (step.pos.len() > 1, self.opt(step, "hex")?) {
            (true, None) => self.arg(step, 1)?.into_bytes(),
            (false, Some(h)) => parse_hex(&h).map_err(bad)?,
            _ => return Err(bad("`line` takes either a string or hex=")),
        };
        bytes.push(b'\n');
        let chunk = self.chunk(step)?;
        self.send(&name, &bytes, chunk)
    }

    /// `text`, `ping`, `pong`, `close` on a line client: the message escaped,
    /// or the control line; `binary` and `frame` have no line form.
    pub(super) fn line_send(&mut self, step: &Step) -> Res {
        let name = self.client_name(step)?;
        if step.keyed.iter().any(|(k, ..)| k == "mask") {
            return Err(bad("mask= is for frames; a line client sends lines"));
        }
        let line = match step.verb.as_str() {
            "text" => escape_line(&self.arg(step, 1)?),
            "ping" | "pong" if step.pos.len() > 1 => {
                return Err(bad("a line client's \\ping and \\pong carry no payload"));
            }
            "ping" => "\\ping".to_string(),
            "pong" => "\\pong".to_string(),
            "close" => {
                let mut line = "\\close".to_string();
                if step.pos.len() > 1 {
                    let code: u16 = Self::int(&self.arg(step, 1)?)?;
                    line.push_str(&format!(" {code}"));
                }
                if step.pos.len() > 2 {
                    line.push(' ');
                    line.push_str(&escape_line(&self.arg(step, 2)?));
                }
                line
            }
            other => return Err(bad(format!("`{other}` has no line form; use `line` or `bytes`"))),
        };
        let chunk = self.chunk(step)?;
        self.send(&name, format!("{line}\n").as_bytes(), chunk)
    }

    /// `expect line C M`: the next server line, as written (escapes kept, no `\n`).
    pub(super) fn expect_line(&mut self, step: &Step) -> Res {
        let name = self.client_name(step)?;
        if !self.is_line_client(step) {
            return Err(bad(format!("`{name}` is not a line client")));
        }
        let item = self.read_or_miss(&name, "a line")?;
        let Item::Line(raw) = &item else {
            return Err(miss("a line", item.to_string()));
        };
        let (op, value) = step.pos[1].clone();
        let (mut fails, mut binds) = (Vec::new(), Vec::new());
        self.check("", op.unwrap_or(Op::Eq), &value, raw, &mut fails, &mut binds)?;
        let fails = fails.into_iter().map(|f| format!("line {f}")).collect();
        self.finish(fails, binds, || item.to_string())
    }
}
