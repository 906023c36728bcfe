//! The delivery policy with a fake clock: every `Instant` is `t0 + offset`.

use std::time::{Duration, Instant};

use lsl_websocket::Key;

use super::{Delivery, Done, Limits, Outcome, Queue};
use crate::wire::{Kind, Record};

fn key(n: u8) -> Key {
    Key::from_bytes([n; 16])
}

fn text(session: u8, text: &str) -> Record {
    Record { session: key(session), kind: Kind::Text, text: text.to_string() }
}

/// The fake clock's origin. `Instant` has no constructor, so this is the
/// only clock read: the policy never reads one, and every later time is
/// `t0 + offset`, so the tests do not depend on how long they take.
fn origin() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One record per delivery, so order and caps are easy to see.
fn single(limits: Limits) -> Queue {
    Queue::new(Limits { max_batch: 1, ..limits }, "http://grid/a/".into())
}

fn answered(q: &mut Queue, now: Instant, d: &Delivery) -> Done {
    q.finished(now, d.id, Outcome::Answered(String::new()))
}

#[test]
fn each_session_in_order_one_delivery_at_a_time() {
    let t0 = origin();
    let mut q = single(Limits::default());
    for r in [text(1, "a1"), text(1, "a2"), text(2, "b1"), text(1, "a3")] {
        assert!(q.push(r));
    }
    let d1 = q.poll_delivery(t0).unwrap();
    let d2 = q.poll_delivery(t0).unwrap();
    assert_eq!((d1.session, d1.body.as_str(), d1.event), (Some(key(1)), "a1", "text"));
    assert_eq!((d2.session, d2.body.as_str()), (Some(key(2)), "b1"));
    // Session 1 has a delivery outstanding: a2 waits for it.
    assert_eq!(q.poll_delivery(t0), None);
    assert!(matches!(answered(&mut q, t0, &d1), Done::Answered { batch: false, .. }));
    assert_eq!(q.poll_delivery(t0).unwrap().body, "a2");
    assert_eq!(q.poll_delivery(t0), None);
}

#[test]
fn in_flight_cap_and_bounded_queue() {
    let t0 = origin();
    let mut q = single(Limits { in_flight: 2, queue: 3, ..Limits::default() });
    assert!(q.push(text(1, "x")) && q.push(text(2, "y")) && q.push(text(3, "z")));
    assert!(!q.has_room());
    assert!(!q.push(text(4, "refused")));
    let d1 = q.poll_delivery(t0).unwrap();
    let _d2 = q.poll_delivery(t0).unwrap();
    assert_eq!(q.poll_delivery(t0), None, "two in flight is the cap");
    assert!(q.has_room());
    answered(&mut q, t0, &d1);
    assert_eq!(q.poll_delivery(t0).unwrap().body, "z");
}

#[test]
fn batches_fit_the_body_and_keep_order() {
    let t0 = origin();
    let mut q = Queue::new(Limits::default(), "http://grid/a/".into());
    let long = "l".repeat(2048);
    for r in [text(1, "a 1"), text(2, "b1"), text(1, "a2"), text(3, &long), text(2, "b2")] {
        q.push(r);
    }
    let d = q.poll_delivery(t0).unwrap();
    assert_eq!((d.event, d.session), ("batch", None));
    let lines: Vec<&str> = d.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", d.body);
    assert!(lines[0].starts_with("text ") && lines[0].ends_with(" a%201"));
    assert!(lines[2].ends_with(" a2") && lines[3].ends_with(" b2"));
    assert!(d.body.len() <= 2048);
    // The 2048-byte message does not fit a batch line: it goes alone, as it is.
    let alone = q.poll_delivery(t0).unwrap();
    assert_eq!((alone.event, alone.session, alone.body.len()), ("text", Some(key(3)), 2048));
}

#[test]
fn busy_is_retried_after_retry_after_then_backs_off() {
    let t0 = origin();
    let mut q = single(Limits::default());
    q.push(text(1, "m"));
    let d = q.poll_delivery(t0).unwrap();
    assert_eq!(q.finished(t0, d.id, Outcome::Busy(Some(Duration::from_secs(2)))), Done::Waiting);
    assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_secs(2)));
    assert_eq!(q.poll_delivery(t0 + ms(1999)), None);
    let again = q.poll_delivery(t0 + Duration::from_secs(2)).unwrap();
    assert_eq!((again.id, again.body.as_str()), (d.id, "m"));
    // Without Retry-After: 250 ms, 500 ms, 1 s, ...
    let mut now = t0 + Duration::from_secs(2);
    for expected in [500, 1000, 2000] {
        q.finished(now, d.id, Outcome::Busy(None));
        assert_eq!(q.poll_timeout(), Some(now + ms(expected)));
        now += ms(expected);
        assert!(q.poll_delivery(now).is_some());
    }
}

#[test]
fn a_retry_holds_its_slot_and_its_session() {
    let t0 = origin();
    let mut q = single(Limits { in_flight: 1, ..Limits::default() });
    q.push(text(1, "first"));
    q.push(text(2, "other"));
    let d = q.poll_delivery(t0).unwrap();
    q.finished(t0, d.id, Outcome::Busy(None));
    assert_eq!(q.in_flight(), 1);
    assert_eq!(q.poll_delivery(t0 + ms(100)), None, "the waiting retry keeps the only slot");
    assert_eq!(q.poll_delivery(t0 + ms(250)).unwrap().body, "first");
}

#[test]
fn gives_up_after_the_tries_and_names_the_sessions() {
    let t0 = origin();
    let mut q = Queue::new(Limits { attempts: 3, ..Limits::default() }, "http://grid/a/".into());
    q.push(text(1, "a"));
    q.push(text(2, "b"));
    let d = q.poll_delivery(t0).unwrap();
    assert_eq!(d.event, "batch");
    let mut now = t0;
    for _ in 0..2 {
        assert_eq!(q.finished(now, d.id, Outcome::Unreachable("refused".into())), Done::Waiting);
        now = q.poll_timeout().unwrap();
        assert!(q.poll_delivery(now).is_some());
    }
    q.push(text(1, "later"));
    match q.finished(now, d.id, Outcome::Unreachable("refused".into())) {
        Done::Failed { sessions, reason } => {
            assert_eq!(sessions, vec![key(1), key(2)]);
            assert!(reason.contains("unreachable") && reason.contains("3 tries"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(q.queued(), 0, "a failed session's later messages are not delivered");
    assert_eq!(q.finished(now, d.id, Outcome::Gone), Done::Unknown);
}

#[test]
fn a_failure_for_good_is_not_retried() {
    let t0 = origin();
    let mut q = single(Limits::default());
    q.push(text(7, "x"));
    let d = q.poll_delivery(t0).unwrap();
    let done = q.finished(t0, d.id, Outcome::Failed("timed out".into()));
    assert_eq!(done, Done::Failed { sessions: vec![key(7)], reason: "timed out".into() });
    assert_eq!((q.in_flight(), q.poll_timeout()), (0, None));
}

#[test]
fn gone_waits_for_a_new_url_and_redelivers_in_order() {
    let t0 = origin();
    let mut q = single(Limits::default());
    q.push(text(1, "a1"));
    q.push(text(1, "a2"));
    let d = q.poll_delivery(t0).unwrap();
    assert_eq!(q.finished(t0, d.id, Outcome::Gone), Done::Waiting);
    assert!(q.is_gone());
    q.push(text(1, "a3"));
    assert_eq!(q.poll_delivery(t0 + ms(10)), None, "nothing goes to a revoked URL");
    assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_secs(60)));
    assert!(!q.grace_expired(t0 + Duration::from_secs(59)));
    q.register("http://grid/b/".into());
    let mut seen = Vec::new();
    while let Some(d) = q.poll_delivery(t0 + ms(20)) {
        assert_eq!(d.url, "http://grid/b/");
        seen.push(d.body.clone());
        answered(&mut q, t0, &d);
    }
    assert_eq!(seen, ["a1", "a2", "a3"]);
    assert!(!q.grace_expired(t0 + Duration::from_secs(600)));
}

#[test]
fn grace_runs_out() {
    let t0 = origin();
    let mut q = single(Limits { grace: Duration::from_secs(5), ..Limits::default() });
    q.push(text(1, "a"));
    let d = q.poll_delivery(t0).unwrap();
    q.finished(t0 + ms(500), d.id, Outcome::Gone);
    assert!(!q.grace_expired(t0 + ms(5499)));
    assert!(q.grace_expired(t0 + ms(5500)));
}

#[test]
fn a_404_from_the_old_url_does_not_stop_the_new_one() {
    let t0 = origin();
    let mut q = single(Limits::default());
    q.push(text(1, "a"));
    q.push(text(2, "b"));
    let old = q.poll_delivery(t0).unwrap();
    q.register("http://grid/new/".into());
    let new = q.poll_delivery(t0).unwrap();
    assert_eq!(new.url, "http://grid/new/");
    assert_eq!(q.finished(t0, old.id, Outcome::Gone), Done::Waiting);
    assert!(!q.is_gone());
    let resent = q.poll_delivery(t0).unwrap();
    assert_eq!((resent.url.as_str(), resent.body.as_str()), ("http://grid/new/", "a"));
}

#[test]
fn a_retry_after_beyond_the_cap_is_capped() {
    let t0 = origin();
    let mut q = single(Limits { max_backoff: Duration::from_secs(10), ..Limits::default() });
    q.push(text(1, "a"));
    let d = q.poll_delivery(t0).unwrap();
    q.finished(t0, d.id, Outcome::Busy(Some(Duration::from_secs(3600))));
    assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_secs(10)));
}
