//! Load loop for `solum-build serve`: GET one URL at a fixed rate (open loop: requests are
//! sent on schedule whether or not earlier ones answered) from several keep-alive clients,
//! then print the latency percentiles and the error count.
//!
//! Usage: serve_bench URL TOKEN [RATE_PER_SEC=200] [SECONDS=10] [CLIENTS=8]

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: serve_bench URL TOKEN [RATE] [SECONDS] [CLIENTS]");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let token = args[2].clone();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (rate, seconds, clients) = (number(3, 200), number(4, 10), number(5, 8));
    let interval = Duration::from_secs_f64(clients as f64 / rate as f64);
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (url, token) = (url.clone(), token.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                // Spread the clients' schedules over one interval.
                let mut next = start + interval.mul_f64(client as f64 / clients as f64);
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while next < start + Duration::from_secs(seconds) {
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let sent = Instant::now();
                    let ok = agent
                        .get(&url)
                        .header("Authorization", format!("Bearer {token}"))
                        .call()
                        .is_ok_and(|mut r| r.status() == 200 && r.body_mut().read_to_vec().is_ok());
                    latencies.push(sent.elapsed());
                    errors += u64::from(!ok);
                    next += interval;
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for thread in threads {
        let (latencies, e) = thread.join().unwrap();
        all.extend(latencies);
        errors += e;
    }
    all.sort();
    let at = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "requests {} in {elapsed:.1}s ({:.0}/s), errors {errors}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        all.len() as f64 / elapsed,
        at(0.50).as_secs_f64() * 1e3,
        at(0.90).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3,
    );
}
