//! Region scope end to end: the region endpoint URL, the SPEC §6 envelope,
//! and the endpoint's independence from object revocations, against the
//! `echo_server` example, the tokio adapter and the std adapter, plus the
//! demo page's region panel in Chromium.
//!
//! These need region scope in the core (`Scope::Region` + `domain` granted
//! the region endpoint URL); without it the region echo script is denied
//! `bad-option` and every test here fails at "region endpoint granted".

mod e2e_support;

use e2e_support::Target;
use e2e_support::wire::{Raw, client, echo_once, http, recv_close, recv_text, split_url, upgrade_request};
use tungstenite::Message;

fn region_url(t: &dyn Target) -> String {
    t.region_url().expect("region endpoint granted to the region echo script (needs region scope in the core)")
}

fn envelope(payload: &str) -> String {
    format!("msg,echo,{payload}")
}

pub fn region_echo(t: &mut dyn Target) {
    let mut ws = client(&region_url(t));
    for payload in ["hello", "a,b,c", "", "héllo ✓"] {
        echo_once(&mut ws, &envelope(payload));
    }
}

pub fn region_errors(t: &mut dyn Target) {
    let mut ws = client(&region_url(t));
    ws.send(Message::text("msg,nobody-listens,x")).unwrap();
    assert_eq!(recv_text(&mut ws), "err,nobody-listens,no-listener");
    ws.send(Message::text("not an envelope")).unwrap();
    assert_eq!(recv_text(&mut ws), "err,,bad-frame");
    // A bad frame does not close the connection.
    echo_once(&mut ws, &envelope("still open"));
}

pub fn region_survives_object_revocation(t: &mut dyn Target) {
    let region = region_url(t);
    let mut ws = client(&region);
    echo_once(&mut ws, &envelope("before"));
    let mut object = Raw::open(&t.object_url());
    for command in ["reset", "remove", "release"] {
        t.command(command);
        assert_eq!(t.region_url().as_deref(), Some(region.as_str()), "{command} left the region endpoint alone");
        echo_once(&mut ws, &envelope(command));
    }
    object.expect_close(1001);
}

pub fn region_restart(t: &mut dyn Target) {
    let old = region_url(t);
    let mut ws = client(&old);
    echo_once(&mut ws, &envelope("before"));
    t.command("restart");
    assert_eq!(recv_close(&mut ws), (1001, "region restart".to_string()));
    let new = region_url(t);
    assert_ne!(new, old, "a restart mints a new region endpoint capability");
    assert_eq!(http(t.addr(), &upgrade_request(&split_url(&old).1, "")).status, 404);
    echo_once(&mut client(&new), &envelope("after"));
}

/// SPEC §5: a region-scope message the script's queue cannot take is
/// answered `err,<domain>,busy`, never dropped. Each of 200 clients pipelines
/// 100 messages: every one is answered once, echoes in order; then each
/// client resends what was busy, one at a time, until it is echoed.
pub fn region_many_clients(t: &mut dyn Target) {
    let _heavy = e2e_support::heavy();
    let url = region_url(t);
    let threads: Vec<_> = (0..200)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut ws = client(&url);
                let id = |m: usize| format!("{c}:{m}");
                for m in 0..100 {
                    ws.send(Message::text(envelope(&id(m)))).unwrap();
                }
                let mut echoed = Vec::new();
                let mut busy = 0;
                for _ in 0..100 {
                    let answer = recv_text(&mut ws);
                    if answer == "err,echo,busy" {
                        busy += 1;
                    } else {
                        let m = (0..100).find(|&m| answer == envelope(&id(m)));
                        echoed.push(m.unwrap_or_else(|| panic!("client {c}: unexpected {answer:?}")));
                    }
                }
                assert!(echoed.windows(2).all(|w| w[0] < w[1]), "client {c}: echoes out of order: {echoed:?}");
                let missing: Vec<usize> = (0..100).filter(|m| !echoed.contains(m)).collect();
                assert_eq!(missing.len(), busy, "client {c}: every message answered exactly once");
                for m in missing {
                    let mut tries = 0;
                    loop {
                        ws.send(Message::text(envelope(&id(m)))).unwrap();
                        let answer = recv_text(&mut ws);
                        if answer == envelope(&id(m)) {
                            break;
                        }
                        assert_eq!(answer, "err,echo,busy", "client {c}");
                        tries += 1;
                        assert!(tries < 1000, "client {c}: message {m} busy 1000 times");
                    }
                }
                let _ = ws.close(None);
            })
        })
        .collect();
    for (c, thread) in threads.into_iter().enumerate() {
        thread.join().unwrap_or_else(|_| panic!("client {c} failed"));
    }
}

macro_rules! region_tests {
    ($start:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                let mut target = $start;
                super::$check(&mut target);
            }
        )*
    };
    ($start:expr) => {
        region_tests!($start; region_echo, region_errors, region_survives_object_revocation, region_restart,
            region_many_clients);
    };
}

mod echo_server {
    use super::e2e_support::process::EchoProcess;

    region_tests!(EchoProcess::start(&[]));

    #[test]
    fn prints_region_url() {
        let p = EchoProcess::start(&[]);
        let url = super::region_url(&p);
        assert!(url.starts_with(&format!("ws://{}/lslws/", super::Target::addr(&p))), "{url}");
    }

    #[test]
    fn demo_page_region_echo_in_chromium() {
        use super::e2e_support::webdriver::{Browser, target_dir};
        let p = EchoProcess::start(&[]);
        let region = super::region_url(&p);
        let browser = Browser::start();
        browser.navigate(&format!("http://{}/", super::Target::addr(&p)));
        browser.wait_text("#region-url", "the region URL", |t| t == region);
        browser.wait_text("#region-status", "an open region connection", |t| t == "open");
        browser.type_into("#region-input", "hello region");
        browser.click("#region-send");
        browser.wait_text("#region-log li.reply", "the region echo", |t| t == "← hello region");
        browser.screenshot(&target_dir().join("browser-region-echo.png"));
    }
}

mod tokio_adapter {
    use super::e2e_support::echo::{example_config, start_tokio};

    region_tests!(start_tokio(example_config()));
}

mod std_adapter {
    use super::e2e_support::echo::{example_config, start_std};

    region_tests!(start_std(example_config()));
}
