//! The bootstrap's statistics against closed-form cases: what a resampled
//! path's outcome must be in distribution, checked within a few standard
//! errors over many seeded paths.

use stratbox_research::montecarlo::{Bootstrap, McConfig, Resample, horizon_returns, simulate};

fn config(paths: usize, horizon: usize, bootstrap: Bootstrap, goal: f64) -> McConfig {
    McConfig { paths, horizon, bootstrap, seed: 42, ruin: 0.2, goal, draws_per_year: 252.0 }
}

fn binomial(n: u64, k: u64) -> f64 {
    (0..k).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64)
}

/// Returns of +10% or -10%, drawn iid 20 times: the final multiple is
/// 1.1^k 0.9^(20-k) with k ~ Binomial(20, 1/2).
#[test]
fn iid_paths_of_a_two_point_sample_are_binomial() {
    let paths = 100_000;
    let r = simulate(&[0.1, -0.1], Resample::Returns, &config(paths, 20, Bootstrap::Iid, 1.000_001)).unwrap();
    // Final >= 1 needs k >= 11: P = (1 - C(20,10) / 2^20) / 2.
    let p = (1.0 - binomial(20, 10) / 2f64.powi(20)) / 2.0;
    let se = (p * (1.0 - p) / paths as f64).sqrt();
    assert!((r.p_goal - p).abs() < 4.0 * se, "P(final >= 1) {} vs {p}", r.p_goal);
    // The median path has k = 10 (P(k <= 9) = 0.41, P(k <= 10) = 0.59).
    assert!((r.final_multiple.at(50.0) - 0.99f64.powi(10)).abs() < 1e-12);
    // Mean of the final multiple: E[prod(1 + r)] = (E[1 + r])^20 = 1.
    let var_one = 0.5 * (1.1f64.powi(2) + 0.9f64.powi(2));
    let sd = (var_one.powi(20) - 1.0).sqrt();
    assert!((r.final_multiple.mean - 1.0).abs() < 4.0 * sd / (paths as f64).sqrt(), "mean {}", r.final_multiple.mean);
    // The extremes are 1.1^20 and 0.9^20 (each with probability 2^-20: seen or not, never beyond).
    assert!(r.final_multiple.max <= 1.1f64.powi(20) + 1e-9 && r.final_multiple.min >= 0.9f64.powi(20) - 1e-9);
}

/// For iid and stationary bootstraps alike each draw is uniform over the
/// sample, so the mean of a path's log growth is `h * mean(log(1 + r))`; for
/// iid draws its variance is `h * var(log(1 + r))` (population variance).
#[test]
fn log_growth_has_the_sample_mean_under_both_bootstraps_and_the_iid_variance() {
    let sample: Vec<f64> = (0..250).map(|i| ((i * 97 % 250) as f64 - 120.0) / 4_000.0).collect();
    let logs: Vec<f64> = sample.iter().map(|r| (1.0 + r).ln()).collect();
    let m = logs.iter().sum::<f64>() / logs.len() as f64;
    let v = logs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / logs.len() as f64;
    let (h, paths) = (100usize, 40_000usize);
    for bootstrap in [Bootstrap::Iid, Bootstrap::Stationary { mean_block: 10.0 }] {
        let draws = horizon_returns(&sample, h, paths, bootstrap, 9);
        let g: Vec<f64> = draws.iter().map(|r| (1.0 + r).ln()).collect();
        let gm = g.iter().sum::<f64>() / paths as f64;
        let gv = g.iter().map(|x| (x - gm).powi(2)).sum::<f64>() / (paths - 1) as f64;
        // Blocks raise the variance of the mean (here the sample is
        // autocorrelated by construction), so allow for that in the check.
        let se = (gv / paths as f64).sqrt();
        assert!((gm - h as f64 * m).abs() < 4.0 * se, "{bootstrap:?}: mean {gm} vs {}", h as f64 * m);
        if bootstrap == Bootstrap::Iid {
            let expected = h as f64 * v;
            // The sample variance's standard error: about var * sqrt(2 / n) for near-normal sums.
            assert!((gv - expected).abs() < 4.0 * expected * (2.0 / paths as f64).sqrt(), "variance {gv} vs {expected}");
        }
    }
}

/// Mean block length L: a block goes on with probability 1 - 1/L, so on a
/// strictly increasing sample the share of steps that continue the previous
/// element is 1 - 1/L (and 1/n for iid, by chance).
#[test]
fn stationary_blocks_have_the_asked_mean_length() {
    // r_i = i * 1e-6, so the index drawn can be read back from the return.
    let n = 1_000usize;
    let sample: Vec<f64> = (0..n).map(|i| i as f64 * 1e-6).collect();
    for l in [1.0, 4.0, 25.0] {
        // One path of two draws per seed: the second continues the first iff it is the next index.
        let pairs = 40_000;
        let mut continued = 0usize;
        for seed in 0..pairs as u64 {
            let two = horizon_returns(&sample, 2, 1, Bootstrap::Stationary { mean_block: l }, seed)[0];
            let one = horizon_returns(&sample, 1, 1, Bootstrap::Stationary { mean_block: l }, seed)[0];
            // Same seed: the same first index i; the second is i+1 (mod n) when the block went on.
            let i = (one / 1e-6).round() as usize;
            let second = ((1.0 + two) / (1.0 + one) - 1.0) / 1e-6;
            if (second - ((i + 1) % n) as f64).abs() < 1e-3 {
                continued += 1;
            }
        }
        let share = continued as f64 / pairs as f64;
        // A restart may land on i+1 by chance (1/n).
        let expected = (1.0 - 1.0 / l) + (1.0 / l) / n as f64;
        let se = (expected * (1.0 - expected) / pairs as f64).sqrt().max(1e-4);
        assert!((share - expected).abs() < 5.0 * se, "L {l}: {share} vs {expected}");
    }
}
