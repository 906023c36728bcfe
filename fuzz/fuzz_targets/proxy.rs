//! Arbitrary first bytes of a connection through the PROXY header parser and
//! the router: no panic, every prefix of an accepted header is Incomplete,
//! the answer never depends on how the bytes were split, and the client
//! address is taken only from a trusted peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lsl_websocket::IpNet;
use lsl_websocket::proxy::{self, Parsed};
use lsl_websocket::route::{self, Route};

fuzz_target!(|data: &[u8]| {
    let whole = proxy::parse(data);
    if let Ok(Parsed::Done { header, len }) = whole {
        assert!(len <= data.len() && len <= proxy::MAX_LEN);
        // What follows the header does not change it.
        assert_eq!(proxy::parse(&data[..len]), whole);
        for cut in 0..len {
            assert_eq!(proxy::parse(&data[..cut]), Ok(Parsed::Incomplete), "cut {cut}");
        }
        let trusted: [IpNet; 1] = ["10.0.0.0/8".parse().unwrap()];
        let stranger = "192.0.2.1".parse().unwrap();
        assert_eq!(proxy::client_address(stranger, &header, &trusted), stranger);
        let peer = "10.0.0.1".parse().unwrap();
        let want = header.source.map_or(peer, |s| s.ip().to_canonical());
        assert_eq!(proxy::client_address(peer, &header, &trusted), want);
    }
    let answer = route::route(data);
    if answer != Route::Incomplete {
        // Decided within the bound, and more bytes never change it.
        let at = (0..=data.len()).find(|&n| route::route(&data[..n]) != Route::Incomplete).unwrap();
        assert!(at <= route::MAX_PREFIX);
        assert_eq!(route::route(&data[..at]), answer);
    } else {
        assert!(data.len() < route::MAX_PREFIX);
    }
});
