//! The conformance kit's runner: every scenario in `conformance/scenarios/`
//! (format: `conformance/FORMAT.md`) run against this crate's `Region`
//! through the public API, Sans-IO, with a fake clock and seeded entropy.

// Frame encoding shared with the SPEC tests.
mod common;

mod conformance {
    pub mod lex;
    pub mod parse;
    pub mod run;
    pub mod wire;
}

use std::path::{Path, PathBuf};

use conformance::run::run_scenario;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/scenarios");

/// Every `*.scn` file, sorted by name.
fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(SCENARIOS)
        .unwrap_or_else(|e| panic!("reading {SCENARIOS}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Runs every scenario, each as its own case, and fails listing every failure.
#[test]
fn scenarios() {
    let files = scenario_files();
    let mut failures = Vec::new();
    for path in &files {
        let name = file_name(path);
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        match run_scenario(&text) {
            Ok(()) => println!("scenario {name} ... ok"),
            Err(failure) => {
                println!("scenario {name} ... FAILED");
                failures.push(format!("{name}:{failure}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}\n",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

/// At least 60 scenarios; each starts with `# SPEC §<n> …` and its file name
/// with `s<n>-` for the same section.
#[test]
fn scenario_headers_and_count() {
    let files = scenario_files();
    assert!(files.len() >= 60, "only {} scenarios in {SCENARIOS}", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let name = file_name(path);
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let first = text.lines().next().unwrap_or_default();
        let section = first
            .strip_prefix("# SPEC §")
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect::<String>())
            .filter(|s| !s.is_empty());
        match section {
            None => problems.push(format!("{name}: first line {first:?} is not `# SPEC §<n> <row>`")),
            Some(n) if !name.starts_with(&format!("s{n}-")) => {
                problems.push(format!("{name}: header names §{n} but the file name lacks the prefix s{n}-"))
            }
            Some(_) if first.len() < "# SPEC §5 x".len() + 4 => {
                problems.push(format!("{name}: header {first:?} does not name the row"))
            }
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The runner is strict: a wrong expectation, an unconsumed item, or a
/// scenario mistake fails with the right line.
#[test]
fn runner_fails_what_it_should() {
    let base = "# SPEC §3 self-test\nscript s1\nllRequestWebsocket s1\nexpect return =>$r1\n";
    let cases: &[(&str, usize, &str)] = &[
        // The granted event is never consumed: the implicit final `expect nothing` fails.
        ("", 5, "WS_URL_GRANTED"),
        ("expect event s1 WS_URL_DENIED id=$r1\n", 5, "WS_URL_GRANTED"),
        ("expect event s1 WS_URL_GRANTED id=$r1 data=\"nope\"\n", 5, "data="),
        ("expect event s1 WS_URL_GRANTED id=$r1 data=>$u\nexpect event s1 WS_OPEN\n", 6, "no event"),
        ("expect event s1 WS_URL_GRANTED data=>$u\nconnect c1 $u\nexpect nothing c1\n", 7, "http 101"),
        ("expect event s1 WS_URL_GRANTED data=>$u\nconnect c1 $u\nexpect http c1 404\n", 7, "http 101"),
        (
            "expect event s1 WS_URL_GRANTED data=>$u\nconnect c1 $u\nexpect http c1 101\nexpect nothing s1\n",
            8,
            "WS_OPEN",
        ),
        ("expect event s1 WS_URL_GRANTED data=>$r1\n", 5, "already bound"),
        ("expect event s1 WS_URL_GRANTED id=$nope\n", 5, "not bound"),
        ("expect event s1 WS_URL_GRANTED\nexpect return WS_OK\n", 6, "no call"),
        ("expect event s1 WS_URL_GRANTED\nexpect closed c9\n", 6, "not a connected client"),
        ("expect event s1 WS_URL_GRANTED\nllGetFreeWebsockets s1\nexpect return 0\n", 7, "1023"),
        (
            "expect event s1 WS_URL_GRANTED data=>$u\nconnect c1 $u\nexpect http c1 101\nexpect event s1 WS_OPEN\ndisconnect c1\n",
            10,
            "1006 connection lost",
        ),
        ("bogus step\n", 5, "unknown verb"),
    ];
    for (tail, line, needle) in cases {
        let text = format!("{base}{tail}");
        let failure = run_scenario(&text).expect_err(&format!("scenario must fail:\n{text}"));
        let shown = failure.to_string();
        assert_eq!(failure.line, *line, "{text}\n{shown}");
        assert!(shown.contains(needle), "{text}\n{shown}\nshould mention {needle:?}");
    }
    let ok = format!("{base}expect event s1 WS_URL_GRANTED id=$r1 domain=\"\" data=>$u data^=\"ws://\"\n");
    run_scenario(&ok).unwrap_or_else(|f| panic!("{f}"));
}

/// The HTTP-in steps are as strict: body, absent header, outcome word, method as the kind.
#[test]
fn runner_fails_http_what_it_should() {
    let base = "# SPEC §8 self-test\nscript s1\nllRequestURL s1\nexpect return =>$r1\n\
                expect event s1 URL_REQUEST_GRANTED id=$r1 data=>$u\nrequest c1 $u method=POST body=\"b\"\n";
    let answered = "expect event s1 POST id=>$q data=\"b\"\nllHTTPResponse s1 $q 200 \"hi\"\n";
    let cases: &[(&str, usize, &str)] = &[
        ("", 7, "POST"),
        ("expect event s1 GET id=>$q\n", 7, "GET"),
        (answered, 9, "http 200"),
        (&format!("{answered}expect http c1 200 body=\"ho\"\n"), 9, "body="),
        (&format!("{answered}expect http c1 200 absent=content-length\n"), 9, "no content-length"),
        (&format!("{answered}expect return already-answered\n"), 9, "\"ok\""),
        ("request c1 $u from=10.0.0.1\n", 7, "from="),
        ("expect event s1 POST id=>$q\nllSetContentType s1 $q CONTENT_TYPE_PDF\n", 8, "CONTENT_TYPE"),
    ];
    for (tail, line, needle) in cases {
        let text = format!("{base}{tail}");
        let failure = run_scenario(&text).expect_err(&format!("scenario must fail:\n{text}"));
        let shown = failure.to_string();
        assert_eq!(failure.line, *line, "{text}\n{shown}");
        assert!(shown.contains(needle), "{text}\n{shown}\nshould mention {needle:?}");
    }
    let ok = format!("{base}{answered}expect return ok\nexpect http c1 200 body=\"hi\" absent=connection\n");
    run_scenario(&ok).unwrap_or_else(|f| panic!("{f}"));
}

/// The line-client steps (SPEC §13) are as strict: the raw line, the
/// message it carries, the control lines, and steps with no line form.
#[test]
fn runner_fails_lines_what_it_should() {
    let base = "# SPEC §13 self-test\nscript s1\nllRequestWebsocket s1\nexpect return =>$r1\n\
                expect event s1 WS_URL_GRANTED data=>$u\nlines c1 $u\n";
    let open = "expect event s1 WS_OPEN id=>$k\n";
    let sent = format!("{open}llWebsocketSend s1 $k \"a\\nb\"\n");
    let cases: &[(&str, usize, &str)] = &[
        ("", 7, "WS_OPEN"),
        (&format!("{sent}expect line c1 \"a\\nb\"\n"), 9, "line =\"a\\nb\""),
        (&format!("{sent}expect text c1 \"a\\\\nb\"\n"), 9, "text =\"a\\\\nb\""),
        (&format!("{sent}expect close c1 1000\n"), 9, "a close frame"),
        (&format!("{open}lines c2 \"/nowhere\"\nexpect text c2 \"x\"\n"), 9, "line \"\\\\error 404"),
        (&format!("{open}binary c1 \"x\"\n"), 8, "no line form"),
        (&format!("{open}ping c1 \"x\"\n"), 8, "no payload"),
        (&format!("{open}text c1 \"x\" mask=none\n"), 8, "mask="),
        ("expect event s1 WS_OPEN\nconnect c2 $u\nline c2 \"x\"\n", 9, "not a line client"),
        (&format!("{open}llWebsocketClose s1 $k 4000 \"\"\nexpect closed c1\n"), 9, "line \"\\\\close 4000 \""),
    ];
    for (tail, line, needle) in cases {
        let text = format!("{base}{tail}");
        let failure = run_scenario(&text).expect_err(&format!("scenario must fail:\n{text}"));
        let shown = failure.to_string();
        assert_eq!(failure.line, *line, "{text}\n{shown}");
        assert!(shown.contains(needle), "{text}\n{shown}\nshould mention {needle:?}");
    }
    let ok = format!(
        "{sent}expect line c1 \"a\\\\nb\"\nclose c1\nexpect close c1 1000 \"\"\nexpect closed c1\n\
                      expect event s1 WS_CLOSE id=$k data=\"1000 \"\n"
    );
    run_scenario(&format!("{base}{ok}")).unwrap_or_else(|f| panic!("{f}"));
}

/// The SSE steps (SPEC §14) are as strict: the event's name by default, the
/// JSON-string data, the heartbeat, and frames on an SSE client.
#[test]
fn runner_fails_sse_what_it_should() {
    let base = "# SPEC §14 self-test\nscript s1\nllRequestWebsocket s1\nexpect return =>$r1\n\
                expect event s1 WS_URL_GRANTED data=>$u\nsse c1 $u\n";
    let open = "expect http c1 200\nexpect sse c1 event=session token=>$t send=>$p\nexpect event s1 WS_OPEN id=>$k\n";
    let sent = format!("{open}llWebsocketSend s1 $k \"a\\nb\"\n");
    let cases: &[(&str, usize, &str)] = &[
        ("", 7, "WS_OPEN"),
        ("expect http c1 200\nexpect sse c1 send=>$p\n", 8, "event=\"message\""),
        (&format!("{sent}expect sse c1 text=\"a\\\\nb\"\n"), 11, "text=\"a\\\\nb\""),
        (&format!("{sent}expect sse c1 data=\"a\\nb\"\n"), 11, "data=\"a\\nb\""),
        (&format!("{sent}expect sse c1 code=1000\n"), 11, "has no member \"code\""),
        (&format!("{sent}expect heartbeat c1\n"), 11, "a heartbeat comment"),
        (&format!("{open}expect sse c1\n"), 10, "nothing received"),
        (&format!("{open}advance 15s\nexpect sse c1\n"), 11, "sse comment \"heartbeat\""),
        (&format!("{open}advance 15s\nexpect heartbeat c1 \"beat\"\n"), 11, "heartbeat =\"beat\""),
        (&format!("{open}text c1 \"x\"\n"), 10, "by `request`"),
        (&format!("{open}connect c2 $u\nexpect sse c2\n"), 11, "not an SSE client"),
    ];
    for (tail, line, needle) in cases {
        let text = format!("{base}{tail}");
        let failure = run_scenario(&text).expect_err(&format!("scenario must fail:\n{text}"));
        let shown = failure.to_string();
        assert_eq!(failure.line, *line, "{text}\n{shown}");
        assert!(shown.contains(needle), "{text}\n{shown}\nshould mention {needle:?}");
    }
    let ok = format!(
        "{sent}expect sse c1 id=\"${{t}}-1\" text=\"a\\nb\" data=\"\\\"a\\\\nb\\\"\"\nadvance 15s\n\
         expect heartbeat c1 \"heartbeat\"\nrequest d1 $p method=DELETE\nexpect http d1 204\nexpect closed d1\n\
         expect sse c1 event=close code=1000 reason=\"\"\nexpect closed c1\nexpect event s1 WS_CLOSE id=$k data=\"1000 \"\n"
    );
    run_scenario(&format!("{base}{ok}")).unwrap_or_else(|f| panic!("{f}"));
}

/// Runs the scenario file named by `SCENARIO` (a path), for debugging.
#[test]
fn one_scenario_from_env() {
    if let Ok(path) = std::env::var("SCENARIO") {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        run_scenario(&text).unwrap_or_else(|f| panic!("{path}:{f}"));
    }
}

/// Every scenario FORMAT.md names (its coverage table, its decisions) exists.
#[test]
fn format_names_existing_scenarios() {
    let format =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/FORMAT.md")).expect("FORMAT.md");
    let files: Vec<String> = scenario_files().iter().map(|p| file_name(p)).collect();
    let (mut missing, mut named) = (Vec::new(), 0);
    for quoted in format.split('`').skip(1).step_by(2) {
        let is_name = quoted.len() > 3
            && quoted.starts_with('s')
            && quoted[1..2].chars().all(|c| c.is_ascii_digit())
            && quoted[2..].starts_with('-')
            && !quoted.contains(['*', ' ', '.']);
        if is_name {
            named += 1;
            if !files.contains(&format!("{quoted}.scn")) {
                missing.push(quoted.to_string());
            }
        }
    }
    assert!(named > 50, "FORMAT.md's coverage table names only {named} scenarios");
    assert!(missing.is_empty(), "FORMAT.md names scenarios that do not exist: {missing:?}");
}
