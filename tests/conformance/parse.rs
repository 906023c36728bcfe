//! Steps: a scenario file's lines, checked against each verb's shape
//! (conformance/FORMAT.md, "Steps").

use super::lex::{Arg, Expr, Op, tokenize};

/// One step of a scenario.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based line number in the file.
    pub line: usize,
    /// The line as written.
    pub text: String,
    /// The verb; for expectations, `expect <what>`.
    pub verb: String,
    /// Positional arguments, with their operator for matcher positions.
    pub pos: Vec<(Option<Op>, Expr)>,
    /// `key OP value` arguments, in order.
    pub keyed: Vec<(String, Op, Expr)>,
}

/// The shape of one verb.
struct Shape {
    verb: &'static str,
    min: usize,
    max: usize,
    /// Positions (0-based, after the verb) that are matchers.
    matchers: &'static [usize],
    /// Positions that must be a bare name (script, client, object).
    names: &'static [usize],
    /// Allowed keys; `*` allows any key.
    keys: &'static [&'static str],
    /// Keys that may repeat.
    repeat: &'static [&'static str],
    /// Whether keyed arguments are matchers (any operator) rather than `=` settings.
    keyed_matchers: bool,
}

const fn shape(
    verb: &'static str,
    min: usize,
    max: usize,
    names: &'static [usize],
    keys: &'static [&'static str],
) -> Shape {
    Shape { verb, min, max, matchers: &[], names, keys, repeat: &[], keyed_matchers: false }
}

const SEND_KEYS: &[&str] = &["mask", "chunk"];

const SHAPES: &[Shape] = &[
    shape("config", 2, 2, &[0], &[]),
    shape("script", 1, 1, &[0], &["object", "owner"]),
    shape("llRequestWebsocket", 1, 1, &[0], &["scope", "secure", "domain", "max_message"]),
    shape("llReleaseWebsocket", 2, 2, &[0], &["domain"]),
    shape("llWebsocketSend", 3, 3, &[0], &[]),
    shape("llWebsocketBroadcast", 3, 3, &[0], &[]),
    shape("llWebsocketClose", 4, 4, &[0], &[]),
    shape("llGetWebsocketHeader", 3, 3, &[0], &[]),
    shape("llGetFreeWebsockets", 1, 1, &[0], &[]),
    shape("llRequestURL", 1, 1, &[0], &[]),
    shape("llRequestSecureURL", 1, 1, &[0], &[]),
    shape("llReleaseURL", 2, 2, &[0], &[]),
    shape("llHTTPResponse", 4, 4, &[0], &[]),
    shape("llSetContentType", 3, 3, &[0], &[]),
    shape("llGetHTTPHeader", 3, 3, &[0], &[]),
    shape("llGetFreeURLs", 1, 1, &[0], &[]),
    shape("script-reset", 1, 1, &[0], &[]),
    shape("script-removed", 1, 1, &[0], &[]),
    shape("object-rezzed", 1, 1, &[0], &[]),
    shape("changed-region", 1, 1, &[0], &[]),
    shape("owner-changed", 1, 1, &[0], &["owner"]),
    shape("object-removed", 1, 1, &[0], &[]),
    shape("region-restart", 0, 0, &[], &[]),
    Shape {
        repeat: &["set", "header", "omit"],
        ..shape(
            "connect",
            1,
            2,
            &[0],
            &["path", "query", "method", "version", "from", "set", "header", "omit", "chunk"],
        )
    },
    Shape {
        repeat: &["set", "header", "omit"],
        ..shape(
            "request",
            2,
            2,
            &[0],
            &[
                "path", "query", "method", "version", "from", "set", "header", "omit", "body", "body-hex", "chunked",
                "chunk",
            ],
        )
    },
    shape("text", 2, 2, &[0], SEND_KEYS),
    shape("binary", 2, 2, &[0], SEND_KEYS),
    shape("ping", 1, 2, &[0], SEND_KEYS),
    shape("pong", 1, 2, &[0], SEND_KEYS),
    shape("close", 1, 3, &[0], SEND_KEYS),
    shape("frame", 1, 1, &[0], &["op", "fin", "rsv", "mask", "len", "payload", "payload-hex", "chunk"]),
    shape("bytes", 1, 2, &[0], &["hex", "chunk"]),
    shape("lines", 1, 2, &[0], &["path", "query", "from", "eol", "chunk"]),
    shape("line", 1, 2, &[0], &["hex", "chunk"]),
    Shape {
        repeat: &["set", "header", "omit"],
        ..shape("sse", 2, 2, &[0], &["path", "query", "from", "last-event-id", "set", "header", "omit", "chunk"])
    },
    shape("disconnect", 1, 1, &[0], &[]),
    shape("advance", 1, 1, &[], &[]),
    Shape {
        repeat: &["id", "domain", "data"],
        keyed_matchers: true,
        ..shape("expect event", 2, 2, &[0], &["id", "domain", "data"])
    },
    Shape { repeat: &["*"], keyed_matchers: true, ..shape("expect http", 2, 2, &[0], &["*"]) },
    Shape { matchers: &[1], ..shape("expect text", 2, 2, &[0], &[]) },
    Shape { matchers: &[2], ..shape("expect close", 1, 3, &[0], &[]) },
    Shape { matchers: &[1], ..shape("expect ping", 1, 2, &[0], &[]) },
    Shape { matchers: &[1], ..shape("expect pong", 1, 2, &[0], &[]) },
    Shape { matchers: &[1], ..shape("expect line", 2, 2, &[0], &[]) },
    Shape {
        repeat: &["event", "id", "token", "retry", "data", "text", "send", "code", "reason"],
        keyed_matchers: true,
        ..shape("expect sse", 1, 1, &[0], &["event", "id", "token", "retry", "data", "text", "send", "code", "reason"])
    },
    Shape { matchers: &[1], ..shape("expect heartbeat", 1, 2, &[0], &[]) },
    shape("expect closed", 1, 1, &[0], &[]),
    shape("expect paused", 1, 1, &[0], &[]),
    shape("expect resumed", 1, 1, &[0], &[]),
    Shape { matchers: &[0], ..shape("expect return", 1, 1, &[], &[]) },
    shape("expect revoked", 2, 2, &[], &[]),
    shape("expect clep", 2, 2, &[], &[]),
    shape("expect nothing", 0, usize::MAX, &[], &[]),
];

/// A valid name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses a whole scenario into steps; errors carry the line number.
pub fn parse(text: &str) -> Result<Vec<Step>, (usize, String, String)> {
    let mut steps = Vec::new();
    let mut config_allowed = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |msg: String| (line, raw.to_string(), msg);
        let args = tokenize(raw).map_err(err)?;
        if args.is_empty() {
            continue;
        }
        let step = step(line, raw, args).map_err(err)?;
        if step.verb == "config" {
            if !config_allowed {
                return Err(err("`config` must come before every other step".into()));
            }
        } else {
            config_allowed = false;
        }
        steps.push(step);
    }
    Ok(steps)
}

fn word(arg: &Arg) -> Option<String> {
    match arg {
        Arg::Pos { op: None, value } => value.literal(),
        _ => None,
    }
}

fn step(line: usize, raw: &str, args: Vec<Arg>) -> Result<Step, String> {
    let mut args = args.into_iter();
    let first = args.next().as_ref().and_then(word).ok_or("a step starts with a verb")?;
    let verb = if first == "expect" {
        let what = args.next().as_ref().and_then(word).ok_or("`expect` needs what to expect")?;
        format!("expect {what}")
    } else {
        first
    };
    let shape = SHAPES.iter().find(|s| s.verb == verb).ok_or_else(|| format!("unknown verb `{verb}`"))?;
    let mut pos = Vec::new();
    let mut keyed: Vec<(String, Op, Expr)> = Vec::new();
    for arg in args {
        match arg {
            Arg::Pos { op, value } => {
                if !keyed.is_empty() {
                    return Err("positional arguments come before key=value arguments".into());
                }
                let at = pos.len();
                if op.is_some() && !shape.matchers.contains(&at) {
                    return Err(format!("argument {} of `{verb}` is a value, not a matcher", at + 1));
                }
                if shape.names.contains(&at) && !value.literal().is_some_and(|n| is_name(&n)) {
                    return Err(format!("argument {} of `{verb}` must be a bare name", at + 1));
                }
                pos.push((op, value));
            }
            Arg::Keyed { key, op, value } => {
                let any = shape.keys.contains(&"*");
                if !any && !shape.keys.contains(&key.as_str()) {
                    return Err(format!("`{verb}` takes no `{key}=`; it takes {:?}", shape.keys));
                }
                if !shape.keyed_matchers && op != Op::Eq {
                    return Err(format!("`{key}{op}` is a matcher; `{verb}` takes `{key}=value`"));
                }
                let repeats = shape.repeat.contains(&"*") || shape.repeat.contains(&key.as_str());
                if !repeats && keyed.iter().any(|(k, ..)| *k == key) {
                    return Err(format!("`{key}=` given twice"));
                }
                keyed.push((key, op, value));
            }
        }
    }
    if pos.len() < shape.min || pos.len() > shape.max {
        let want = match (shape.min, shape.max) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        return Err(format!("`{verb}` takes {want} positional arguments, got {}", pos.len()));
    }
    Ok(Step { line, text: raw.trim().to_string(), verb, pos, keyed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let steps =
            parse("# SPEC §5 x\nconfig max_message 64\nscript s1 object=o1\n\nexpect event s1 WS_OPEN id=>$k\n")
                .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[2].verb, "expect event");
        assert_eq!(steps[2].line, 5);
        assert!(parse("script s1\nconfig max_message 64").is_err());
        assert!(parse("frobnicate s1").is_err());
        assert!(parse("script s1 colour=red").is_err());
        assert!(parse("llWebsocketSend s1 $k").is_err());
        assert!(parse("text $c1 hi").is_err());
        assert!(parse("expect text c1 =>$x").is_ok());
        assert!(parse("text c1 =>$x").is_err());
        assert!(parse("connect c1 $u set=\"A: b\" set=\"C: d\"").is_ok());
        assert!(parse("connect c1 $u path=a path=b").is_err());
        assert!(parse("request c1 $u method=POST body=\"x\" header=\"A: b\" header=\"C: d\"").is_ok());
        assert!(parse("request c1").is_err());
        assert!(parse("llHTTPResponse s1 $q 200").is_err());
    }
}
