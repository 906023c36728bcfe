//! The probe's `--sse` checks (SPEC §14): each passes against the
//! `echo_server` example, and each fails — without hanging — against a
//! deliberately broken SSE server (`probe_fakes::sse`).

mod e2e_support;
mod probe_fakes;
mod probe_support;

use std::time::Duration;

use e2e_support::Target;
use e2e_support::process::EchoProcess;
use probe_fakes::sse::{Flaws, broken_sse, set_flaws};
use probe_support::{Run, fail_line, fake_server, names_needing, probe};

/// The server-sent events checks (SPEC §14, `--sse`).
const SSE_CHECKS: [&str; 10] = [
    "sse-open",
    "sse-echo",
    "sse-ids",
    "sse-post-413",
    "sse-post-400",
    "sse-unknown-404",
    "sse-delete-close",
    "sse-ended-204",
    "sse-resume",
    "sse-region",
];

fn sse_lines(run: &Run) -> Vec<&str> {
    run.checks().into_iter().filter(|l| l.contains(" sse-")).collect()
}

#[test]
fn every_sse_check_passes_against_echo_server() {
    let p = EchoProcess::start(&[]);
    let region = p.region_url().expect("echo_server's region echo script holds the region URL");
    let run = probe(&["--object-url", &p.object_url(), "--region-url", &region, "--sse"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let mut listed = names_needing("--sse");
    listed.sort_unstable();
    let mut all = SSE_CHECKS.to_vec();
    all.sort_unstable();
    assert_eq!(all, listed);
    for name in SSE_CHECKS {
        assert!(run.has(&format!("PASS {name}")), "no PASS {name}\n{}", run.shown());
    }
    assert_eq!(sse_lines(&run).len(), SSE_CHECKS.len(), "{}", run.shown());
    println!("{}", run.shown());
}

#[test]
fn without_sse_the_sse_checks_are_left_out() {
    let p = EchoProcess::start(&[]);
    let run = probe(&["--object-url", &p.object_url()]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    assert!(sse_lines(&run).is_empty(), "{}", run.shown());
    assert!(run.has("SKIP sse-*"), "{}", run.shown());
    let run = probe(&["--object-url", &p.object_url(), "--sse"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    assert_eq!(sse_lines(&run).len(), SSE_CHECKS.len() - 1, "{}", run.shown());
    assert!(run.has("SKIP sse-region"), "{}", run.shown());
}

#[test]
fn list_names_the_sse_checks() {
    let run = probe(&["--list"]);
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let text = run.lines.join("\n");
    assert!(text.contains("sse-echo [--sse]: ") && text.contains("sse-region [--sse --region-url]: "), "{text}");
    assert!(text.contains("sse-limits: "), "{text}");
}

/// Runs the probe with `--sse` against an SSE server with `flaws`; its
/// other checks fail at once (the server closes what is no SSE request).
fn broken_run(flaws: Flaws) -> Run {
    let addr = fake_server(broken_sse);
    let port = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a port");
    set_flaws(port, flaws);
    let object = format!("ws://{addr}/lslws/{}/", probe_fakes::CAP);
    let region = format!("ws://{addr}/lslws/{}/", probe_fakes::lines::REGION_CAP);
    let run = probe(&["--object-url", &object, "--region-url", &region, "--sse", "--timeout", "1"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
    run
}

/// Each flaw: the checks it fails, and a word of why (in the first one's line).
const VERDICTS: [(Flaws, &[&str], &str); 10] = [
    (Flaws::HEADERS, &["sse-open"], "cache-control is None"),
    (Flaws::RAW_DATA, &["sse-echo", "sse-region"], "not a JSON string"),
    (Flaws::SAME_IDS, &["sse-ids", "sse-resume"], "ids must increase"),
    (Flaws::NO_CAP, &["sse-post-413"], "want 413"),
    (Flaws::NO_UTF8, &["sse-post-400"], "want 400"),
    (Flaws::ANY_TOKEN, &["sse-unknown-404", "sse-ended-204"], "204 Broken\", want 404"),
    (Flaws::SILENT_DELETE, &["sse-delete-close", "sse-ended-204"], "the close event after DELETE: no answer within"),
    (Flaws::ENDED_NEW, &["sse-ended-204"], "200 OK\", want 204"),
    (Flaws::NO_RESUME, &["sse-resume"], "got event \"session\""),
    (Flaws::REGION_RAW, &["sse-region"], "\"sub,echo\""),
];

#[test]
fn each_sse_flaw_fails_the_checks_it_breaks_and_only_those() {
    let mut failed = Vec::new();
    for (flaws, wrong, why) in VERDICTS {
        let run = broken_run(flaws);
        println!("{flaws:?}:\n{}", run.shown());
        for name in SSE_CHECKS {
            if wrong.contains(&name) {
                assert!(!fail_line(&run, name).is_empty(), "{flaws:?}");
                failed.push(name);
            } else {
                assert!(run.has(&format!("PASS {name}")), "{flaws:?}: no PASS {name}\n{}", run.shown());
            }
        }
        let first = fail_line(&run, wrong[0]);
        assert!(first.contains(why), "{flaws:?}: {first} should say {why:?}");
    }
    // Every SSE check is shown failing by some flaw.
    failed.sort_unstable();
    failed.dedup();
    let mut all = SSE_CHECKS.to_vec();
    all.sort_unstable();
    assert_eq!(failed, all);
    assert_eq!(Flaws::EACH.len(), VERDICTS.len());
}
