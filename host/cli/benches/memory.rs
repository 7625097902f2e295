//! Memory of the default paper host run as fast as it goes (issue 10, item
//! 12): the bundled plugins on 50 simulated instruments, `pace_ms = 0`, for
//! `STRATBOX_MEM_SECS` seconds (default 170), its resident set sampled every
//! second. Run twice in one go, side by side: with the caches as configured
//! by default, and with sled's own default (1 GiB) for the journal's and the
//! plugin stores' caches, as before they were bounded.
//!
//! `cargo bench -p stratbox --bench memory`

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SLED_DEFAULT_CACHE: u64 = 1 << 30;

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

struct Run {
    samples: Vec<(u64, u64)>,
    events: u64,
}

fn run(bin: &str, dir: &Path, secs: u64, caches: Option<u64>) -> Run {
    let plugins = dir.join("plugins");
    let data = dir.join(if caches.is_some() { "data-sled-default" } else { "data-default" });
    let cache = caches.map(|c| format!("[journal]\ncache_bytes = {c}\n[sandbox]\nstore_cache_bytes = {c}\n")).unwrap_or_default();
    let p = |f: &str| plugins.join(f).display().to_string();
    let config = format!(
        "pace_ms = 0\nstatus_secs = 0\ndata_dir = {data:?}\n[feed]\nkind = \"simulator\"\ninstruments = 50\n{cache}\
         [[plugin]]\npath = {:?}\n[[plugin]]\npath = {:?}\nprotects = [\"sma-cross\"]\n[[plugin]]\npath = {:?}\n",
        p("sma_cross.wasm"), p("stops.wasm"), p("zscore_guard.wasm"),
    );
    let file = dir.join(if caches.is_some() { "sled-default.toml" } else { "default.toml" });
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(bin)
        .args(["run", "--config", file.to_str().unwrap(), "--duration", &secs.to_string(), "--json"])
        .env("STRATBOX_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut samples = Vec::new();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(secs + 60) {
        if let Some(rss) = rss_bytes(child.id()) {
            samples.push((start.elapsed().as_secs(), rss));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let out = child.wait_with_output().unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    Run { samples, events: summary["status"]["stats"]["events"].as_u64().unwrap_or(0) }
}

fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / 1e6)
}

/// Median of the resident set over the last third of the run.
fn plateau(r: &Run) -> u64 {
    let tail = &r.samples[r.samples.len() * 2 / 3..];
    let mut v: Vec<u64> = tail.iter().map(|s| s.1).collect();
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let secs: u64 = std::env::var("STRATBOX_MEM_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(170);
    let bin = env!("CARGO_BIN_EXE_stratbox");
    let dir = tempfile::tempdir().unwrap();
    // The embedded bundled plugins, written out by a run of no length.
    let prep = dir.path().join("prep");
    let ok = Command::new(bin).args(["run", "--duration", "0", "--data-dir", prep.to_str().unwrap()]).stdout(Stdio::null()).status().unwrap();
    assert!(ok.success());
    std::fs::rename(prep.join("bundled-plugins"), dir.path().join("plugins")).unwrap();

    let bounded = run(bin, dir.path(), secs, None);
    let before = run(bin, dir.path(), secs, Some(SLED_DEFAULT_CACHE));
    println!("\n| after (s) | caches bounded (default) | sled's 1 GiB default (before) |\n|---|---|---|");
    for t in (10..=secs).step_by(20) {
        let at = |r: &Run| r.samples.iter().find(|s| s.0 >= t).map_or("-".into(), |s| mb(s.1));
        println!("| {t} | {} | {} |", at(&bounded), at(&before));
    }
    let peak = |r: &Run| r.samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!("| plateau (median of the last third) | {} | {} |", mb(plateau(&bounded)), mb(plateau(&before)));
    println!("| peak | {} | {} |", mb(peak(&bounded)), mb(peak(&before)));
    println!("| events | {} | {} |", bounded.events, before.events);
    println!("| ratio of plateaus | {:.2}x | 1.00x |", plateau(&bounded) as f64 / plateau(&before) as f64);
}
