//! The metrics figure: how long a Prometheus scrape of the local server's
//! `/metrics` takes (HTTP/1.1 on loopback, a new connection each time, as a
//! scraper makes), with the clusters and jobs the benchmark made so far.

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use crate::process::Sky;

/// The median wall time of `samples` scrapes, and the size of the last page.
pub fn scrape_median(sky: &Sky, samples: usize) -> (Duration, usize) {
    let address = sky.endpoint().trim_start_matches("http://").to_string();
    let mut times = Vec::with_capacity(samples);
    let mut size = 0;
    for _ in 0..samples {
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(&address).expect("connect to the server");
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut page = Vec::new();
        stream.read_to_end(&mut page).expect("response");
        times.push(started.elapsed());
        assert!(page.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&page));
        size = page.len();
    }
    (crate::process::median(&mut times), size)
}
