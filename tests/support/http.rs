//! Plain HTTP/1.1 over loopback for tests of the servers selflet runs (metrics, console).
#![allow(dead_code)] // each test file uses part of it

use std::io::{Read, Write};
use std::time::Duration;

/// `GET path` on `addr`, the whole response (status line, headers, body) as text.
pub(crate) fn get(addr: impl std::net::ToSocketAddrs, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The body of a response.
pub(crate) fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
