//! A bridge: one simulated script whose WebSocket traffic is relayed to
//! stdout and driven from stdin, one line per event, on the std adapter.
//!
//! ```text
//! cargo run --example stdio_bridge --features std -- [--bind ADDR] [--domain DOMAIN]
//! ```
//!
//! Without `--domain` the script holds an object-scope URL; with it, the
//! script listens on that region domain and the CLEP channel of the domain
//! is printed, so another program can relay the traffic to in-world chat on
//! the channel CLEP scripts use.
//!
//! stdout (text is escaped: `\\` for `\`, `\n` for a newline, `\r` for CR):
//!
//! ```text
//! url <url>                      the script's URL was granted
//! denied <reason>                … or denied (budget, no-secure, bad-option, too-many)
//! channel <n>                    region scope: the CLEP channel of the domain
//! open <session> <path-info>     a client connected
//! text <session> <text>          a client sent text
//! close <session> <code> <reason>
//! error <session> <WS_ERR_…>     a send or close from stdin failed
//! ```
//!
//! stdin: `send <session> <text>`, `close <session> <code> <reason>`,
//! `quit`. End of input also quits: the program on the other side is gone.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

use lsl_websocket::adapter::std::Server;
use lsl_websocket::adapter::{Handler, OsEntropy};
use lsl_websocket::{Config, Entropy, Event, EventKind, Key, Region, Scope, ScriptInfo, WebsocketRequest, clep};

struct Bridge {
    script: ScriptInfo,
    domain: Option<String>,
}

impl Handler for Bridge {
    fn on_start(&mut self, region: &mut Region, _now: Instant) {
        let scope = if self.domain.is_some() { Scope::Region } else { Scope::Object };
        let request = WebsocketRequest { scope, domain: self.domain.clone(), ..WebsocketRequest::default() };
        region.request_websocket(self.script, &request);
        if let Some(domain) = &self.domain {
            print_line(&format!("channel {}", clep::channel(domain)));
        }
    }

    fn on_event(&mut self, _region: &mut Region, _now: Instant, _script: Key, event: Event) {
        let line = match event.kind {
            EventKind::UrlGranted => format!("url {}", event.data),
            EventKind::UrlDenied => format!("denied {}", event.data),
            EventKind::Open => format!("open {} {}", event.id, escape(&event.data)),
            EventKind::Text => format!("text {} {}", event.id, escape(&event.data)),
            EventKind::Close => format!("close {} {}", event.id, escape(&event.data)),
            // The bridge requests no HTTP-in URL; printed rather than dropped should one ever come.
            EventKind::Http(method) => format!("http {} {} {}", method.as_str(), event.id, escape(&event.data)),
        };
        print_line(&line);
    }
}

impl Bridge {
    /// Applies one stdin line; `Err` is a usage message for stderr.
    fn command(&mut self, region: &mut Region, now: Instant, line: &str) -> Result<(), String> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (session, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let session: Key = session.parse().map_err(|_| format!("not a session key: {session:?}"))?;
        let script = self.script.script;
        let failure = match verb {
            "send" => region.websocket_send(script, session, &unescape(rest)).err().map(|e| e.lsl_name()),
            "close" => {
                let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
                let code = code.parse().map_err(|_| format!("not a close code: {code:?}"))?;
                region.websocket_close(now, script, session, code, &unescape(reason)).err().map(|e| match e {
                    lsl_websocket::CloseError::NoSession => "WS_ERR_NO_SESSION",
                    lsl_websocket::CloseError::BadCode(_) => "WS_ERR_BAD_CODE",
                    lsl_websocket::CloseError::ReasonTooLong(_) => "WS_ERR_TOO_LARGE",
                })
            }
            _ => return Err(format!("unknown command {verb:?} (send, close, quit)")),
        };
        if let Some(name) = failure {
            print_line(&format!("error {session} {name}"));
        }
        Ok(())
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// One line on stdout, flushed at once: the other program waits for it.
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn key(entropy: &mut OsEntropy) -> Key {
    let mut bytes = [0; 16];
    entropy.fill(&mut bytes);
    Key::from_random_bytes(bytes)
}

fn main() -> ExitCode {
    let mut bind = "127.0.0.1:8788".to_string();
    let mut domain = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--bind", Some(addr)) => bind = addr,
            ("--domain", Some(d)) => domain = Some(d),
            _ => {
                eprintln!("usage: stdio_bridge [--bind ADDR] [--domain DOMAIN]");
                return ExitCode::from(2);
            }
        }
    }
    let mut entropy = match OsEntropy::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let script = ScriptInfo { script: key(&mut entropy), object: key(&mut entropy), owner: key(&mut entropy) };
    let server = match Server::bind(&bind, Config::default(), Bridge { script, domain }) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot listen on {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handle = server.handle();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let line = line.trim_end_matches('\r').to_string();
            if line == "quit" {
                break;
            }
            let sent = handle.call(move |bridge: &mut Bridge, region, now| {
                if let Err(usage) = bridge.command(region, now, &line) {
                    eprintln!("{usage}");
                }
            });
            if sent.is_err() {
                return;
            }
        }
        let _ = handle.shutdown();
    });
    match server.run() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
