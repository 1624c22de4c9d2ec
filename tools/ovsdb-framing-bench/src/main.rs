//! One 8 MiB OVSDB message (a monitor reply's shape: 100,000 rows) fed to
//! the controller's framer in 64 KiB reads, as the driver reads it: CPU
//! time and peak RSS (issue 19 item 4).
//!
//!   cargo run --release --manifest-path tools/ovsdb-framing-bench/Cargo.toml \
//!       --target-dir target -- [default|16m]
//!
//! `default`: the controller's limits (a 4 MiB message maximum: refused);
//! `16m`: limits raised to 16 MiB, so the whole message is framed and
//! parsed. The framer before incremental framing (commit 687229a's
//! `controller/src/ovsdb/framing.rs`, re-parsing the buffer on every read)
//! took 11.8 s of CPU for the same message.
//!
//! A crate of its own (serde_json and thiserror only), so a release build
//! of it takes seconds.

#[allow(dead_code)]
#[path = "../../../controller/src/ovsdb/framing.rs"]
mod new;

fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn hwm_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "default".into());
    // A monitor reply's shape: many rows of short strings.
    let mut body = String::from(r#"{"id":1,"error":null,"result":{"Interface":{"#);
    let mut i = 0;
    while body.len() < 8 << 20 {
        body.push_str(&format!(
            r#""{i:08x}-0000-0000-0000-000000000000":{{"new":{{"name":"vm{i}","ofport":{i}}}}},"#
        ));
        i += 1;
    }
    body.pop();
    body.push_str("}}}");
    let rss0 = hwm_mib();
    let (t0, w0) = (cpu(), std::time::Instant::now());
    let mut got = 0;
    let limits = match which.as_str() {
        "default" => new::Limits::default(),
        _ => new::Limits::for_message(16 << 20),
    };
    let mut f = new::Framer::new(limits);
    'feed: for chunk in body.as_bytes().chunks(64 << 10) {
        f.push(chunk);
        loop {
            match f.next_message() {
                Ok(Some(_)) => got += 1,
                Ok(None) => break,
                Err(e) => {
                    println!("refused: {e}");
                    break 'feed;
                }
            }
        }
    }
    println!(
        "{which}: {} bytes, {} rows, {got} message: cpu {:.2} s, wall {:.2} s, peak RSS {:.0} MiB (before: {:.0} MiB)",
        body.len(), i, cpu() - t0, w0.elapsed().as_secs_f64(), hwm_mib(), rss0
    );
}
