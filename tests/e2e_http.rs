//! HTTP-in end to end (SPEC §8) over real TCP on 127.0.0.1, with `curl` and
//! `ureq` as clients, against the `echo_server` example (a child process)
//! and the tokio adapter in this process: every §8 row a socket can observe,
//! each lifecycle command, and 200 concurrent clients × 50 requests.

mod e2e_support;

use std::time::Duration;

use e2e_support::echo::{example_config, start_tokio};
use e2e_support::http;
use e2e_support::process::EchoProcess;
use lsl_websocket::Config;

macro_rules! http_tests {
    ($module:ident, $start:expr, $start_with_rate:expr, $start_with_timeout:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn echo_curl_and_ureq() {
                http::http_echo_curl_and_ureq(&mut $start);
            }
            #[test]
            fn refusals_404_405_431() {
                http::http_refusals_404_405_431(&mut $start);
            }
            #[test]
            fn body_limits_chunked_and_continue() {
                http::http_body_limits_chunked_and_continue(&mut $start);
            }
            #[test]
            fn status_and_headers() {
                http::http_status_and_headers(&mut $start);
            }
            #[test]
            fn keep_alive_pipelining_and_close() {
                http::http_keep_alive_pipelining_and_close(&mut $start);
            }
            #[test]
            fn in_flight_cap_503() {
                http::http_in_flight_cap_503(&mut $start);
            }
            #[test]
            fn lifecycle_commands() {
                let mut t = $start;
                for command in ["reset", "rez", "region-change", "owner-change", "remove", "release", "restart"] {
                    http::http_lifecycle(&mut t, command);
                }
            }
            #[test]
            fn clients_200_x_50() {
                let _heavy = e2e_support::heavy();
                http::http_clients_200_x_50(&mut $start_with_rate(1_000_000));
            }
            #[test]
            fn rate_429() {
                http::http_rate_429(&mut $start_with_rate(3));
            }
            #[test]
            fn timeout_504() {
                http::http_timeout_504(&mut $start_with_timeout);
            }
        }
    };
}

fn process_with_rate(rate: u32) -> EchoProcess {
    EchoProcess::start(&["--handshakes-per-second", &rate.to_string()])
}

fn tokio_with_rate(rate: u32) -> e2e_support::echo::AdapterTarget {
    start_tokio(Config { handshakes_per_second: rate, ..example_config() })
}

http_tests!(echo_server, EchoProcess::start(&[]), process_with_rate, EchoProcess::start(&["--http-timeout", "1"]));
http_tests!(
    tokio_adapter,
    start_tokio(example_config()),
    tokio_with_rate,
    start_tokio(Config { http_timeout: Duration::from_secs(1), ..example_config() })
);
