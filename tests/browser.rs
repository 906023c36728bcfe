//! The demo page in a real browser: headless Chromium (Debian's), driven
//! through chromedriver, loads `GET /` from the `echo_server` example, types
//! into the page's own input, clicks its send button, and must show the echo;
//! then a `reset` on the server's stdin must show up on the page as close
//! 1001 `script reset`. A screenshot is saved as `target/browser-echo.png`.
//!
//! Fails, not skips, without Chromium: `scripts/setup.sh` installs it.

mod e2e_support;

use e2e_support::Target;
use e2e_support::process::EchoProcess;
use e2e_support::webdriver::{Browser, target_dir};

#[test]
fn demo_page_echoes_in_chromium() {
    let mut server = EchoProcess::start(&[]);
    let browser = Browser::start();
    browser.navigate(&format!("http://{}/", server.addr()));

    browser.wait_text("#object-url", "the object URL", |t| t == server.object_url());
    browser.wait_text("#object-status", "an open connection", |t| t == "open");
    let message = "hello from chromium, ✓";
    browser.type_into("#object-input", message);
    browser.click("#object-send");
    browser.wait_text("#object-log li.sent", "the sent message", |t| t == format!("→ {message}"));
    browser.wait_text("#object-log li.reply", "the echo", |t| t == format!("← {message}"));

    // Enter sends too.
    browser.type_into("#object-input", "second\n");
    browser.wait_text("#object-log li.reply", "the second echo", |t| t == "← second");

    let screenshot = target_dir().join("browser-echo.png");
    browser.screenshot(&screenshot);

    // A lifecycle event reaches the page as a close code and reason.
    server.command("reset");
    browser.wait_text("#object-status", "the close", |t| t == "closed 1001 script reset");
    browser.wait_text("#object-log li.closed", "the close in the log", |t| t == "closed 1001 script reset");
    // The page's reconnect fetches the new URL and works again.
    browser.click("#object-connect");
    browser.wait_text("#object-url", "the new object URL", |t| t == server.object_url());
    browser.wait_text("#object-status", "a reopened connection", |t| t == "open");
    browser.type_into("#object-input", "after reset\n");
    browser.wait_text("#object-log li.reply", "the echo after reconnecting", |t| t == "← after reset");
    browser.screenshot(&target_dir().join("browser-echo-after-reset.png"));
}

/// The HTTP-in panel: one `fetch` per message to the script's HTTP-in URL,
/// showing status and body; after `reset` the old URL answers 404 and the
/// reloaded URL works again.
#[test]
fn demo_page_http_in_panel_in_chromium() {
    let mut server = EchoProcess::start(&[]);
    let browser = Browser::start();
    browser.navigate(&format!("http://{}/", server.addr()));

    browser.wait_text("#http-url", "the HTTP-in URL", |t| t == server.http_url());
    browser.wait_text("#http-status", "a granted URL", |t| t == "ready");
    let message = "über HTTP-in, ✓";
    browser.type_into("#http-input", message);
    browser.click("#http-send");
    browser.wait_text("#http-log li.sent", "the sent body", |t| t == format!("→ {message}"));
    browser.wait_text("#http-log li.reply", "the answer", |t| t == format!("← 200 {message}"));
    browser.wait_text("#http-status", "the status", |t| t == "200 OK");
    browser.type_into("#http-input", "second\n");
    browser.wait_text("#http-log li.reply", "the second answer", |t| t == "← 200 second");
    browser.screenshot(&target_dir().join("browser-http-in.png"));

    // The script's URL is revoked: the page's old URL now gets 404.
    server.command("reset");
    browser.type_into("#http-input", "to the old URL\n");
    browser.wait_text("#http-log li.error", "the 404", |t| t.starts_with("← 404"));
    browser.click("#http-connect");
    browser.wait_text("#http-url", "the new HTTP-in URL", |t| t == server.http_url());
    browser.type_into("#http-input", "after reset\n");
    browser.wait_text("#http-log li.reply", "the answer after reset", |t| t == "← 200 after reset");
}

/// The demo page forced into the server-sent events fallback, through a
/// relay that can drop the connections: Chromium's own `EventSource` and
/// `fetch` carry the echo; a dropped stream is resumed by the browser with
/// nothing lost (the echo sent while it was down arrives, and the page sees
/// no close); a `reset` shows `closed 1001 script reset`.
#[test]
fn demo_page_sse_fallback_in_chromium() {
    let mut server = EchoProcess::start(&[]);
    let relay = e2e_support::relay::Relay::start(server.addr());
    let browser = Browser::start();
    browser.navigate(&format!("http://{}/", relay.addr));
    browser.wait_text("#object-status", "an open WebSocket", |t| t == "open");
    browser.wait_text("#object-transport", "a WebSocket", |t| t == "websocket");
    browser.click("#fallback");
    browser.wait_text("#object-transport", "the fallback", |t| t == "sse");
    browser.wait_text("#object-status", "an open stream", |t| t == "open");
    browser.type_into("#object-input", "over sse, ✓\n");
    browser.wait_text("#object-log li.reply", "the echo over sse", |t| t == "← over sse, ✓");

    // A blip: every connection through the relay drops. The message sent
    // right after goes up by a new POST; its echo waits in the session's
    // resume memory until the browser's EventSource reconnects.
    relay.cut();
    std::thread::sleep(std::time::Duration::from_millis(300));
    browser.type_into("#object-input", "during the blip\n");
    browser.wait_text("#object-log li.reply", "the echo after the resume", |t| t == "← during the blip");
    assert!(browser.texts("#object-log li.closed").is_empty(), "the page saw no close: the session resumed");
    browser.wait_text("#object-status", "still open", |t| t == "open");
    browser.screenshot(&target_dir().join("browser-sse-fallback.png"));

    server.command("reset");
    browser.wait_text("#object-status", "the close", |t| t == "closed 1001 script reset");
}
