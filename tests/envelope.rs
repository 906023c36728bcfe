//! The region-scope envelope (`SPEC.md` §6) through the public API.

use lsl_websocket::Key;
use lsl_websocket::envelope::{
    ClientFrame, DomainError, EnvelopeError, ErrorWord, MAX_DOMAIN_LEN, ServerFrame, parse_client, parse_server,
    validate_domain,
};
use lsl_websocket::key::ParseKeyError;
use proptest::prelude::*;

const KEY: &str = "0f2d9e3c-6a4b-4c1e-9d7f-2b8a1c3e5f70";

fn key() -> Key {
    KEY.parse().unwrap()
}

fn encode_server(frame: &ServerFrame<'_>) -> String {
    let mut out = Vec::new();
    frame.encode_into(&mut out);
    assert_eq!(out.len(), frame.encoded_len(), "{frame:?}");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text, frame.to_string());
    text
}

fn encode_client(frame: &ClientFrame<'_>) -> String {
    let mut out = Vec::new();
    frame.encode_into(&mut out);
    assert_eq!(out.len(), frame.encoded_len(), "{frame:?}");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text, frame.to_string());
    text
}

// ---- domains ----

#[test]
fn domain_limits() {
    assert_eq!(MAX_DOMAIN_LEN, 64);
    assert_eq!(validate_domain("a"), Ok(()));
    assert_eq!(validate_domain(&"x".repeat(64)), Ok(()));
    assert_eq!(validate_domain(&"ü".repeat(32)), Ok(()), "64 bytes, 32 chars");
    assert_eq!(validate_domain(""), Err(DomainError::Empty));
    assert_eq!(validate_domain(&"x".repeat(65)), Err(DomainError::TooLong { len: 65 }));
    // Bytes, not characters, are counted.
    assert_eq!(validate_domain(&format!("{}x", "ü".repeat(32))), Err(DomainError::TooLong { len: 65 }));
    for (domain, c) in [("a,b", ','), ("a\nb", '\n'), ("a\r", '\r'), (",", ',')] {
        assert_eq!(validate_domain(domain), Err(DomainError::ForbiddenChar(c)));
    }
    for ok in ["service:chat", "with space", "tab\there", "emoji 😀", "UPPER", " "] {
        assert_eq!(validate_domain(ok), Ok(()), "{ok:?}");
    }
}

// ---- client → region: every row of the SPEC table ----

#[test]
fn client_sub() {
    assert_eq!(parse_client("sub,chat"), Ok(ClientFrame::Sub { domain: "chat" }));
}

#[test]
fn client_uns() {
    assert_eq!(parse_client("uns,chat"), Ok(ClientFrame::Uns { domain: "chat" }));
}

#[test]
fn client_msg() {
    assert_eq!(parse_client("msg,chat,hello"), Ok(ClientFrame::Msg { domain: "chat", payload: "hello" }));
}

#[test]
fn client_to() {
    assert_eq!(
        parse_client(&format!("to,{KEY},chat,hello")),
        Ok(ClientFrame::To { object: key(), domain: "chat", payload: "hello" })
    );
    // Keys typed by hand in upper case name the same object.
    assert_eq!(
        parse_client(&format!("to,{},chat,hello", KEY.to_uppercase())),
        Ok(ClientFrame::To { object: key(), domain: "chat", payload: "hello" })
    );
}

#[test]
fn client_payloads_keep_everything_after_the_head() {
    for payload in
        ["", ",", "a,b,c", ",,,", "line\nbreak\r\n", "\n", "😀 ünïcødé ✓", "msg,other,x", "\0", " lead and trail "]
    {
        let text = format!("msg,chat,{payload}");
        let frame = parse_client(&text).unwrap();
        assert_eq!(frame, ClientFrame::Msg { domain: "chat", payload });
        assert_eq!(encode_client(&frame), text);

        let text = format!("to,{KEY},chat,{payload}");
        let frame = parse_client(&text).unwrap();
        assert_eq!(frame, ClientFrame::To { object: key(), domain: "chat", payload });
        assert_eq!(encode_client(&frame), text);
    }
}

#[test]
fn client_domains_at_the_limits() {
    let long = "d".repeat(64);
    assert_eq!(parse_client(&format!("sub,{long}")), Ok(ClientFrame::Sub { domain: &long }));
    assert_eq!(parse_client(&format!("msg,{long},p")), Ok(ClientFrame::Msg { domain: &long, payload: "p" }));
    assert_eq!(parse_client("sub,emoji 😀"), Ok(ClientFrame::Sub { domain: "emoji 😀" }));
}

#[test]
fn client_malformed() {
    use EnvelopeError::*;
    let too_long = "x".repeat(65);
    let cases: Vec<(String, EnvelopeError)> = vec![
        ("".into(), UnknownVerb),
        (",".into(), UnknownVerb),
        (",chat".into(), UnknownVerb),
        ("hello".into(), UnknownVerb),
        ("pub,chat".into(), UnknownVerb),
        ("SUB,chat".into(), UnknownVerb),
        ("Msg,chat,x".into(), UnknownVerb),
        (" sub,chat".into(), UnknownVerb),
        ("err,,bad-frame".into(), UnknownVerb),
        ("subchat".into(), UnknownVerb),
        ("sub".into(), MissingField("domain")),
        ("uns".into(), MissingField("domain")),
        ("msg".into(), MissingField("domain")),
        ("to".into(), MissingField("object key")),
        ("msg,chat".into(), MissingField("payload")),
        (format!("to,{KEY}"), MissingField("domain")),
        (format!("to,{KEY},chat"), MissingField("payload")),
        ("sub,".into(), BadDomain(DomainError::Empty)),
        ("uns,".into(), BadDomain(DomainError::Empty)),
        ("msg,,x".into(), BadDomain(DomainError::Empty)),
        ("msg,,".into(), BadDomain(DomainError::Empty)),
        (format!("to,{KEY},,x"), BadDomain(DomainError::Empty)),
        (format!("sub,{too_long}"), BadDomain(DomainError::TooLong { len: 65 })),
        (format!("msg,{too_long},x"), BadDomain(DomainError::TooLong { len: 65 })),
        (format!("to,{KEY},{too_long},x"), BadDomain(DomainError::TooLong { len: 65 })),
        ("sub,chat,".into(), BadDomain(DomainError::ForbiddenChar(','))),
        ("sub,chat,extra".into(), BadDomain(DomainError::ForbiddenChar(','))),
        ("uns,chat,".into(), BadDomain(DomainError::ForbiddenChar(','))),
        ("sub,chat\n".into(), BadDomain(DomainError::ForbiddenChar('\n'))),
        ("sub,chat\r\n".into(), BadDomain(DomainError::ForbiddenChar('\r'))),
        ("msg,a\nb,x".into(), BadDomain(DomainError::ForbiddenChar('\n'))),
        ("to,,chat,x".into(), BadKey(ParseKeyError)),
        ("to,not-a-key,chat,x".into(), BadKey(ParseKeyError)),
        (format!("to,{},chat,x", &KEY[..35]), BadKey(ParseKeyError)),
        (format!("to,{KEY}0,chat,x"), BadKey(ParseKeyError)),
        ("to,0f2d9e3c6a4b4c1e9d7f2b8a1c3e5f70,chat,x".into(), BadKey(ParseKeyError)),
        ("to,{0f2d9e3c-6a4b-4c1e-9d7f-2b8a1c3e5f7},chat,x".into(), BadKey(ParseKeyError)),
        ("to,0f2d9e3c-6a4b-4c1e-9d7f-2b8a1c3e5fzz,chat,x".into(), BadKey(ParseKeyError)),
        ("to,chat,hello".into(), BadKey(ParseKeyError)),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_client(&text), Err(expected), "{text:?}");
    }
}

#[test]
fn errors_have_readable_messages() {
    let e = parse_client(&format!("sub,{}", "x".repeat(65))).unwrap_err();
    assert_eq!(e.to_string(), "invalid domain: domain is 65 bytes long, more than 64");
    assert_eq!(parse_client("msg,chat").unwrap_err().to_string(), "missing payload");
    assert_eq!(parse_client("").unwrap_err().to_string(), "unknown verb");
    assert!(parse_client("to,x,chat,y").unwrap_err().to_string().starts_with("invalid object key"));
}

// ---- region → client: every row of the SPEC table ----

#[test]
fn server_msg() {
    let frame = ServerFrame::Msg { domain: "chat", payload: "a,b\nc" };
    assert_eq!(encode_server(&frame), "msg,chat,a,b\nc");
    assert_eq!(parse_server("msg,chat,a,b\nc"), Ok(frame));
    let empty = ServerFrame::Msg { domain: "chat", payload: "" };
    assert_eq!(encode_server(&empty), "msg,chat,");
    assert_eq!(parse_server("msg,chat,"), Ok(empty));
}

#[test]
fn server_err_every_word() {
    for (word, text) in [
        (ErrorWord::NoListener, "no-listener"),
        (ErrorWord::Busy, "busy"),
        (ErrorWord::TooLarge, "too-large"),
        (ErrorWord::BadFrame, "bad-frame"),
    ] {
        assert_eq!(word.as_str(), text);
        assert_eq!(word.to_string(), text);
        assert_eq!(ErrorWord::from_wire(text), Some(word));
        let frame = ServerFrame::Err { domain: "chat", word };
        assert_eq!(encode_server(&frame), format!("err,chat,{text}"));
        assert_eq!(parse_server(&format!("err,chat,{text}")), Ok(frame));
    }
}

#[test]
fn server_bad_frame_has_an_empty_domain() {
    assert_eq!(encode_server(&ServerFrame::BAD_FRAME), "err,,bad-frame");
    assert_eq!(ServerFrame::BAD_FRAME, ServerFrame::Err { domain: "", word: ErrorWord::BadFrame });
    assert_eq!(parse_server("err,,bad-frame"), Ok(ServerFrame::BAD_FRAME));
    assert_eq!(parse_server("err,,busy"), Ok(ServerFrame::Err { domain: "", word: ErrorWord::Busy }));
}

#[test]
fn server_uns() {
    let frame = ServerFrame::Uns { domain: "chat" };
    assert_eq!(encode_server(&frame), "uns,chat");
    assert_eq!(parse_server("uns,chat"), Ok(frame));
}

#[test]
fn encode_appends() {
    let mut out = b"prefix|".to_vec();
    ServerFrame::Uns { domain: "chat" }.encode_into(&mut out);
    ClientFrame::Sub { domain: "x" }.encode_into(&mut out);
    assert_eq!(out, b"prefix|uns,chatsub,x");
}

#[test]
fn server_malformed() {
    use EnvelopeError::*;
    let cases: Vec<(String, EnvelopeError)> = vec![
        ("".into(), UnknownVerb),
        ("sub,chat".into(), UnknownVerb),
        (format!("to,{KEY},chat,x"), UnknownVerb),
        ("ERR,,bad-frame".into(), UnknownVerb),
        ("msg".into(), MissingField("domain")),
        ("err".into(), MissingField("domain")),
        ("uns".into(), MissingField("domain")),
        ("msg,chat".into(), MissingField("payload")),
        ("err,chat".into(), MissingField("error word")),
        ("err,".into(), MissingField("error word")),
        ("err,chat,".into(), UnknownErrorWord),
        ("err,chat,BUSY".into(), UnknownErrorWord),
        ("err,chat,busy,".into(), UnknownErrorWord),
        ("err,chat,busy\n".into(), UnknownErrorWord),
        ("msg,,x".into(), BadDomain(DomainError::Empty)),
        ("uns,".into(), BadDomain(DomainError::Empty)),
        ("uns,chat,".into(), BadDomain(DomainError::ForbiddenChar(','))),
        (format!("err,{},busy", "x".repeat(65)), BadDomain(DomainError::TooLong { len: 65 })),
        ("err,a\rb,busy".into(), BadDomain(DomainError::ForbiddenChar('\r'))),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_server(&text), Err(expected), "{text:?}");
    }
}

// ---- properties ----

/// Valid domains: any characters but `,`, `\n`, `\r`, cut to at most 64
/// bytes on a character boundary; plus ASCII ones that reach 64 exactly.
fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^,\r\n]{1,64}".prop_map(|mut s| {
            while s.len() > MAX_DOMAIN_LEN {
                s.pop();
            }
            s
        }),
        "[a-z0-9:._ -]{1,64}",
    ]
}

/// Payloads: any characters at all, commas and line breaks included.
fn payload() -> impl Strategy<Value = String> {
    prop_oneof![prop::collection::vec(any::<char>(), 0..80).prop_map(String::from_iter), "[a-z,\r\n😀]{0,40}",]
}

fn word() -> impl Strategy<Value = ErrorWord> {
    prop_oneof![
        Just(ErrorWord::NoListener),
        Just(ErrorWord::Busy),
        Just(ErrorWord::TooLarge),
        Just(ErrorWord::BadFrame),
    ]
}

fn any_key() -> impl Strategy<Value = Key> {
    any::<[u8; 16]>().prop_map(Key::from_bytes)
}

/// Text shaped like frames (a verb, then a few fields) so the parsers get
/// past the verb more often than with plain random strings.
fn frame_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("sub"), Just("uns"), Just("msg"), Just("to"), Just("err"), Just("x"), Just("")],
        prop::collection::vec("(?s).{0,40}", 0..4),
    )
        .prop_map(|(verb, fields)| {
            let mut s = verb.to_owned();
            for f in fields {
                s.push(',');
                s.push_str(&f);
            }
            s
        })
}

/// Checks the parsers on arbitrary text: no panic, and whatever they accept
/// re-encodes to something they parse back to the same frame.
fn check_arbitrary(text: &str) {
    if let Ok(frame) = parse_client(text) {
        let encoded = encode_client(&frame);
        // Only the case of a `to` key may differ from the input.
        assert!(encoded.eq_ignore_ascii_case(text), "{text:?} -> {encoded:?}");
        assert_eq!(parse_client(&encoded), Ok(frame));
        assert_eq!(validate_domain(frame.domain()), Ok(()));
    }
    if let Ok(frame) = parse_server(text) {
        assert_eq!(encode_server(&frame), text);
    }
}

proptest! {
    #[test]
    fn valid_domains_validate(domain in domain()) {
        prop_assert_eq!(validate_domain(&domain), Ok(()));
    }

    #[test]
    fn client_frames_round_trip(
        domain in domain(),
        payload in payload(),
        object in any_key(),
        upper in any::<bool>(),
    ) {
        let sub = format!("sub,{domain}");
        prop_assert_eq!(parse_client(&sub), Ok(ClientFrame::Sub { domain: &domain }));
        let uns = format!("uns,{domain}");
        prop_assert_eq!(parse_client(&uns), Ok(ClientFrame::Uns { domain: &domain }));
        let msg = format!("msg,{domain},{payload}");
        prop_assert_eq!(
            parse_client(&msg),
            Ok(ClientFrame::Msg { domain: &domain, payload: &payload })
        );
        let key_text = if upper { object.to_string().to_uppercase() } else { object.to_string() };
        let to = format!("to,{key_text},{domain},{payload}");
        prop_assert_eq!(
            parse_client(&to),
            Ok(ClientFrame::To { object, domain: &domain, payload: &payload })
        );

        // The crate's own encoder writes the same text (keys in lower case).
        for frame in [
            ClientFrame::Sub { domain: &domain },
            ClientFrame::Uns { domain: &domain },
            ClientFrame::Msg { domain: &domain, payload: &payload },
            ClientFrame::To { object, domain: &domain, payload: &payload },
        ] {
            let text = encode_client(&frame);
            prop_assert_eq!(parse_client(&text), Ok(frame));
        }
    }

    #[test]
    fn server_frames_round_trip(
        domain in domain(),
        payload in payload(),
        word in word(),
        empty_err_domain in any::<bool>(),
    ) {
        let err_domain = if empty_err_domain { "" } else { domain.as_str() };
        for frame in [
            ServerFrame::Msg { domain: &domain, payload: &payload },
            ServerFrame::Err { domain: err_domain, word },
            ServerFrame::Uns { domain: &domain },
        ] {
            let text = encode_server(&frame);
            prop_assert_eq!(parse_server(&text), Ok(frame));
        }
    }

    #[test]
    fn invalid_domains_are_rejected(
        domain in prop_oneof![
            "[^,]{0,80}",
            "[a-z]{0,70}[\r\n][a-z]{0,5}",
            "[a-z]{65,90}",
        ],
        payload in payload(),
    ) {
        prop_assume!(validate_domain(&domain).is_err());
        let sub = format!("sub,{domain}");
        prop_assert!(matches!(parse_client(&sub), Err(EnvelopeError::BadDomain(_))));
        let uns = format!("uns,{domain}");
        prop_assert!(matches!(parse_server(&uns), Err(EnvelopeError::BadDomain(_))));
        // A domain without a comma cannot be mistaken for domain + payload.
        let msg = format!("msg,{domain},{payload}");
        prop_assert!(matches!(parse_client(&msg), Err(EnvelopeError::BadDomain(_))));
        prop_assert!(matches!(parse_server(&msg), Err(EnvelopeError::BadDomain(_))));
    }

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        check_arbitrary(&text);
    }

    #[test]
    fn arbitrary_multiline_strings_never_panic(text in "(?s).{0,200}") {
        check_arbitrary(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_arbitrary(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn frame_like_strings_never_panic(text in frame_like()) {
        check_arbitrary(&text);
    }
}
