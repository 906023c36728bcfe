//! ISSUE 13 STAND-IN, delete at the merge with main: the core API the lead
//! adds on main (`crate::proxy`, `crate::route`, `Config::route_tag`,
//! `Config::trusted_proxies`), with the documented signatures, so the
//! adapter compiles before it lands. After the merge this file becomes
//! `pub(crate) use crate::{proxy, route};` plus the two config helpers.
#![allow(dead_code, clippy::missing_const_for_fn)]

use crate::config::Config;

pub(crate) mod proxy {
    use std::net::{IpAddr, SocketAddr};

    pub(crate) enum Parsed {
        Incomplete,
        Done { header: ProxyHeader, len: usize },
    }

    pub(crate) struct ProxyHeader {
        pub(crate) version: u8,
        pub(crate) source: Option<SocketAddr>,
        pub(crate) destination: Option<SocketAddr>,
    }

    #[derive(Debug)]
    pub(crate) enum ProxyError {
        NotProxy,
    }

    pub(crate) const MAX_LEN: usize = 536;

    pub(crate) fn parse(_buf: &[u8]) -> Result<Parsed, ProxyError> {
        Err(ProxyError::NotProxy)
    }

    pub(crate) fn client_address(peer: IpAddr, _header: &ProxyHeader, _trusted: &[()]) -> IpAddr {
        peer
    }
}

pub(crate) mod route {
    pub(crate) enum Route {
        Incomplete,
        Tag(u16),
        Untagged,
    }

    pub(crate) const MAX_PREFIX: usize = 512;

    pub(crate) fn route(_buf: &[u8]) -> Route {
        Route::Untagged
    }
}

/// `Config::trusted_proxies`.
pub(crate) fn trusted(_config: &Config) -> &[()] {
    &[]
}

/// Sets `Config::route_tag`.
pub(crate) fn set_route_tag(_config: &mut Config, _tag: u16) {}
