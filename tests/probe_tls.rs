//! The probe over TLS: every check passes against `echo_server`'s `wss://`
//! and `https://` URLs when it trusts the test CA (`--ca-file`), WebSocket,
//! HTTP-in, line clients and event streams alike; with another CA every
//! connection fails its certificate check; without `--ca-file` a TLS URL is
//! a usage error.

mod e2e_support;
mod probe_support;

use e2e_support::Target;
use e2e_support::process::EchoProcess;
use e2e_support::tls::Certs;
use probe_support::probe;

fn start(certs: &Certs) -> EchoProcess {
    let mut args = certs.args();
    args.extend(["--http-timeout".to_string(), "1".to_string()]);
    EchoProcess::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn every_check_passes_over_tls() {
    let certs = Certs::new();
    let server = start(&certs);
    let (object, http) = (server.secure_object_url.clone().unwrap(), server.secure_http_url.clone().unwrap());
    assert!(object.starts_with("wss://") && http.starts_with("https://"));
    let region = server.region_url().unwrap();
    let ca = certs.ca.display().to_string();
    let args = ["--ca-file", &ca, "--object-url", &object, "--region-url", &region, "--http-url", &http];
    let run = probe(&[&args[..], &["--http-timeout", "1", "--lines", "--sse"]].concat());
    assert_eq!(run.code, Some(0), "{}", run.shown());
    let summary = run.summary().to_string();
    println!("{summary}");
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
    for name in ["PASS text-echo", "PASS http-body-echo", "PASS lines-echo", "PASS sse-echo"] {
        assert!(run.has(name), "no {name}\n{}", run.shown());
    }
}

#[test]
fn another_ca_fails_and_no_ca_is_a_usage_error() {
    let (certs, other) = (Certs::new(), Certs::new());
    let server = start(&certs);
    let object = server.secure_object_url.clone().unwrap();
    let wrong = other.ca.display().to_string();
    let run = probe(&["--ca-file", &wrong, "--object-url", &object, "--timeout", "2"]);
    assert_eq!(run.code, Some(1), "{}", run.shown());
    assert!(run.has("FAIL handshake-101"), "{}", run.shown());
    assert!(run.lines.iter().any(|l| l.contains("invalid peer certificate")), "{}", run.shown());
    let run = probe(&["--object-url", &object]);
    assert_eq!(run.code, Some(2), "{}", run.shown());
    assert!(run.stderr.contains("--ca-file"), "{}", run.shown());
}
