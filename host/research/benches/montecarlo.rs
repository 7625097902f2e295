//! The Monte Carlo figure of the risk-research issue: 10,000 paths of a
//! 5-year daily series (1,260 real S&P 500 index returns, 2010-06..2015-06,
//! from `../shared/data/daily/sp500_index_1950_2015.csv`), iid and stationary
//! block bootstrap, on all cores and on one; and the VaR table (four methods,
//! 100,000 Monte Carlo draws). Goal: 10,000 paths in <= 1 s. Medians of 7.
//!
//! `cargo bench -p stratbox-research --bench montecarlo`

use std::time::{Duration, Instant};

use stratbox_research::montecarlo::{Bootstrap, McConfig, Resample, simulate};
use stratbox_research::var::{McVar, var_table};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median((0..runs).map(|_| { let t = Instant::now(); std::hint::black_box(f()); t.elapsed() }).collect())
}

fn main() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/daily/sp500_index_1950_2015.csv");
    let Ok(text) = std::fs::read_to_string(&file) else {
        eprintln!("skipped: {} is absent (the real data of ../shared/data)", file.display());
        return;
    };
    // date,open,high,low,close,volume, oldest first.
    let closes: Vec<f64> = text.lines().skip(1).filter_map(|l| l.split(',').nth(4)?.parse().ok()).collect();
    let tail = &closes[closes.len() - 1_261..];
    let returns: Vec<f64> = tail.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    println!("sample: {} daily returns of the S&P 500 index (the last of {file:?})", returns.len());
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    for (name, bootstrap) in [("iid", Bootstrap::Iid), ("stationary, mean block 20", Bootstrap::Stationary { mean_block: 20.0 })] {
        let c = McConfig { paths: 10_000, horizon: returns.len(), bootstrap, seed: 1, ruin: 0.5, goal: 2.0, draws_per_year: 252.0 };
        let all = time(7, || simulate(&returns, Resample::Returns, &c).unwrap());
        let single = time(7, || one.install(|| simulate(&returns, Resample::Returns, &c).unwrap()));
        let r = simulate(&returns, Resample::Returns, &c).unwrap();
        println!(
            "10,000 paths x {} days, {name}: {:.1} ms on {} threads, {:.1} ms on 1 ({:.2}x); median final x{:.3}, P(ruin) {:.4}, median max drawdown {:.1}%",
            returns.len(),
            all.as_secs_f64() * 1e3,
            rayon::current_num_threads(),
            single.as_secs_f64() * 1e3,
            single.as_secs_f64() / all.as_secs_f64(),
            r.final_multiple.at(50.0),
            r.p_ruin,
            r.max_drawdown.at(50.0) * 100.0
        );
    }
    let t = time(7, || var_table(&returns, 1, McVar::default()));
    println!("VaR table (historical, normal, Cornish-Fisher, Monte Carlo of 100,000 draws; 95% and 99%): {:.1} ms", t.as_secs_f64() * 1e3);
    for v in var_table(&returns, 1, McVar::default()) {
        println!("  {:>14} {:.0}%: VaR {:.3}%  CVaR {:.3}%", v.method, v.confidence * 100.0, v.var * 100.0, v.cvar * 100.0);
    }
}
