//! Properties of the PROXY header parser and the router (SPEC §15, §16):
//! any split of the input gives the same answer, and no input panics.

use lsl_websocket::proxy::{self, Parsed};
use lsl_websocket::route::{MAX_PREFIX, Route, route};
use proptest::prelude::*;

/// Feeds `bytes` as a reader would: growing prefixes at the given cuts, until an answer.
fn parse_in_steps(bytes: &[u8], cuts: &[usize]) -> Result<Parsed, proxy::ProxyError> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    for end in ends {
        match proxy::parse(&bytes[..end]) {
            Ok(Parsed::Incomplete) => continue,
            done => return done,
        }
    }
    Ok(Parsed::Incomplete)
}

fn v1() -> impl Strategy<Value = Vec<u8>> {
    (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>(), any::<u16>(), ".{0,8}").prop_map(|(s, d, sp, dp, tail)| {
        let ip = |b: [u8; 4]| std::net::Ipv4Addr::from(b).to_string();
        format!("PROXY TCP4 {} {} {sp} {dp}\r\n{tail}", ip(s), ip(d)).into_bytes()
    })
}

fn v2() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..2,
        prop::sample::select(vec![0x00u8, 0x11, 0x12, 0x21, 0x22, 0x31]),
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(command, family, mut body, tail)| {
            let need = match family >> 4 {
                1 => 12,
                2 => 36,
                3 => 216,
                _ => 0,
            };
            body.resize(body.len().max(need), 7);
            let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            out.extend_from_slice(&[0x20 | command, family]);
            out.extend_from_slice(&(body.len() as u16).to_be_bytes());
            out.extend_from_slice(&body);
            out.extend_from_slice(&tail);
            out
        })
}

proptest! {
    #[test]
    fn proxy_headers_parse_the_same_under_any_split(
        bytes in prop_oneof![v1(), v2(), prop::collection::vec(any::<u8>(), 0..200)],
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let whole = proxy::parse(&bytes);
        prop_assert_eq!(parse_in_steps(&bytes, &cuts), whole);
        if let Ok(Parsed::Done { len, .. }) = whole {
            prop_assert!(len <= bytes.len() && len <= proxy::MAX_LEN);
        }
    }

    #[test]
    fn generated_headers_are_accepted_whole(bytes in prop_oneof![v1(), v2()]) {
        prop_assert!(matches!(proxy::parse(&bytes), Ok(Parsed::Done { .. })), "{:?}", proxy::parse(&bytes));
    }

    #[test]
    fn routing_is_decided_once_and_early(
        bytes in prop_oneof![
            ("[A-Z]{1,8}", prop::sample::select(vec!["/lslws/", "/lslhttp/", "/lslhttps/", "/lslsse/", "/", "/lsl"]), "[0-9a-fA-F]{0,6}", ".{0,20}")
                .prop_map(|(m, p, h, t)| format!("{m} {p}{h}{t}").into_bytes()),
            prop::collection::vec(any::<u8>(), 0..100),
        ],
    ) {
        let mut decided: Option<Route> = None;
        for end in 0..=bytes.len() {
            match route(&bytes[..end]) {
                Route::Incomplete => prop_assert!(decided.is_none() && end < MAX_PREFIX),
                got => {
                    prop_assert!(decided.is_none_or(|d| d == got));
                    decided = Some(got);
                }
            }
        }
    }
}
