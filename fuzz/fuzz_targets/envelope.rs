//! Arbitrary strings through the envelope parsers: anything accepted encodes
//! to text that parses to the same value, with the announced length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lsl_websocket::envelope::{ClientFrame, parse_client, parse_server};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(frame) = parse_client(&text) {
        let mut out = Vec::new();
        frame.encode_into(&mut out);
        assert_eq!(out.len(), frame.encoded_len(), "{frame:?}");
        assert_eq!(String::from_utf8(out.clone()).unwrap(), frame.to_string());
        let again = std::str::from_utf8(&out).expect("encodes to UTF-8");
        assert_eq!(parse_client(again), Ok(frame), "client frame {text:?} re-encoded as {again:?}");
        // Nothing is trimmed: the encoding is the input, up to the case of a `to` key.
        match frame {
            ClientFrame::To { .. } => assert!(again.eq_ignore_ascii_case(&text)),
            _ => assert_eq!(again, &*text),
        }
    }
    if let Ok(frame) = parse_server(&text) {
        let mut out = Vec::new();
        frame.encode_into(&mut out);
        assert_eq!(out.len(), frame.encoded_len(), "{frame:?}");
        assert_eq!(String::from_utf8(out.clone()).unwrap(), frame.to_string());
        let again = std::str::from_utf8(&out).expect("encodes to UTF-8");
        assert_eq!(parse_server(again), Ok(frame), "server frame {text:?} re-encoded as {again:?}");
        assert_eq!(again, &*text);
    }
});
