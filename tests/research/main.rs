//! The research runner: backtests through the host's own pipeline over data
//! loaded once, against real components built from source and a real sled
//! market store.

#[path = "../support/mod.rs"]
mod support;
mod ml;
mod stops;

use std::path::Path;
use std::sync::Arc;

use stratbox_engine::config::{HostConfig, ParamInput, PluginSpec};
use stratbox_market::store::{MarketStore, PriceSource, StoreConfig};
use stratbox_market::{Bar, NANOS_PER_SEC, ReplayConfig, ReplayData};
use stratbox_research::backtest::{ResearchError, daily_equity};
use stratbox_research::metrics::Conventions;
use stratbox_research::{Window, backtest, research_risk};
// (the study tests below import the study modules)

const DAY: i64 = 86_400 * NANOS_PER_SEC;

/// 20 instruments x 400 days of a seeded mean-reverting walk (crosses often).
fn store(path: &Path) {
    let mut store = MarketStore::open(path, StoreConfig::default()).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..20u32 {
        let id = store.instrument_id(&format!("S{i:02}")).unwrap();
        let base = 30.0 + f64::from(i);
        let mut price = base;
        for d in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let shock = ((seed % 2001) as f64 - 1000.0) / 1000.0 * 0.03;
            price = (price * (1.0 + shock) + 0.05 * (base - price)).max(1.0);
            let p = (price * 100.0).round() / 100.0;
            let bar = Bar { instrument: id, start: 1_262_304_000 * NANOS_PER_SEC + d * DAY, period_secs: 86_400, open: p, high: p * 1.01, low: p * 0.99, close: p, volume: 1e5 };
            store.append_bar(&bar, PriceSource::Trade).unwrap();
        }
        store.commit().unwrap();
    }
    store.seal_all().unwrap();
    store.flush().unwrap();
}

fn config(data_dir: &Path, fast: i64, slow: i64) -> HostConfig {
    let spec = PluginSpec::new(support::component("examples/sma-cross")).param("fast", ParamInput::Integer(fast)).param("slow", ParamInput::Integer(slow));
    let mut c = HostConfig { data_dir: data_dir.to_owned(), plugins: vec![spec], ..HostConfig::default() };
    c.risk = research_risk(c.risk);
    c.risk.capital = 1e6;
    c
}

#[test]
fn a_backtest_is_the_hosts_pipeline_read_back_from_its_journal_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    assert_eq!(data.bars(), 20 * 400);
    let c = config(dir.path(), 3, 8);
    let run = backtest(&data, &c, Window::default()).unwrap();
    assert_eq!(run.bars, 8_000, "every bar replayed");
    assert!(run.faults.is_empty(), "{:?}", run.faults);
    assert!(run.fills.len() > 100, "sma-cross 3/8 trades often: {} fills", run.fills.len());
    // Nothing on disk: the journal and the plugin store were in memory.
    assert!(!dir.path().join("journal").exists() && !dir.path().join("plugin-store").exists());

    // The journal's equity is the capital plus every book's P&L: the last
    // point equals the ledger's realised + open P&L summed by symbol.
    let last = run.equity.last().unwrap().equity;
    let by_symbol: f64 = run.contribution.values().sum();
    assert!((last - (1e6 + by_symbol)).abs() < 1e-6 * 1e6, "equity {last} vs capital + contributions {}", 1e6 + by_symbol);
    // Closed round trips add up to what the fills realised: each trade's P&L
    // is its fills' cash flows, and a flat instrument's contribution is the sum of its trades.
    let flat: Vec<&String> = run.contribution.keys().filter(|s| run.fills.iter().rev().find(|f| &&f.symbol == s).is_some_and(|f| f.position == 0.0)).collect();
    assert!(!flat.is_empty());
    for s in flat {
        let trades: f64 = run.trades.iter().filter(|t| &t.symbol == s).map(|t| t.pnl).sum();
        assert!((trades - run.contribution[s]).abs() < 1e-6, "{s}: trades {trades} vs ledger {}", run.contribution[s]);
    }
    let days = daily_equity(&run.equity);
    assert_eq!(days.len(), 400, "one end-of-day point a day");
    let m = run.metrics(Conventions::default(), None);
    assert_eq!(m.returns.periods, 400);
    assert_eq!(m.trades.trades, run.trades.iter().filter(|t| t.closed.is_some()).count());
    assert!(m.time_in_market > 0.5 && m.exposure > 0.0 && m.annual_turnover > 0.0, "{m:?}");

    // The same inputs give the same run, fill for fill.
    let again = backtest(&data, &c, Window::default()).unwrap();
    assert_eq!(again.fills, run.fills);
    assert_eq!(again.equity, run.equity);

    // A window replays only its bars, from flat.
    let from = 1_262_304_000 * NANOS_PER_SEC + 100 * DAY;
    let part = backtest(&data, &c, Window { from: Some(from), to: Some(from + 100 * DAY) }).unwrap();
    assert_eq!(part.bars, 2_000);
    assert!(part.fills.iter().all(|f| f.time >= from && f.time < from + 101 * DAY));
}

#[test]
fn bad_research_input_is_named_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    // fast >= slow: sma-cross refuses to start; the run says so, naming the plugin's reason.
    let e = backtest(&data, &config(dir.path(), 30, 10), Window::default()).err().expect("refused");
    assert!(matches!(&e, ResearchError::PluginRefused(why) if why.contains("fast")), "{e}");
    // A window outside the data.
    let late = 1_262_304_000 * NANOS_PER_SEC + 1_000 * DAY;
    let e = backtest(&data, &config(dir.path(), 3, 8), Window { from: Some(late), to: None }).err().expect("empty");
    assert!(e.to_string().contains("holds no bars") && e.to_string().contains("2010-01-01"), "{e}");
    // A symbol the store does not hold.
    let e = ReplayData::load(&dir.path().join("market"), &ReplayConfig { symbols: vec!["NOPE".into()], ..ReplayConfig::default() }).err().expect("unknown");
    assert!(e.to_string().contains("NOPE"), "{e}");
}

use stratbox_research::space::{ParamDecl, Space};
use stratbox_research::study::{self, Bench, Direction, Sampler, Shard, StudyError, StudyFile, StudySpec, TrialRecord, TrialState};

fn sma_decls() -> Vec<ParamDecl> {
    vec![
        ParamDecl { name: "fast".into(), default: ParamInput::Integer(10), min: Some(1.0), max: Some(1000.0) },
        ParamDecl { name: "slow".into(), default: ParamInput::Integer(30), min: Some(2.0), max: Some(5000.0) },
    ]
}

fn study_spec(sampler: Sampler, seed: u64, space: &str) -> StudySpec {
    StudySpec {
        plugin: "sma-cross".into(),
        plugin_version: "0.1.0".into(),
        plugin_sha256: "test".into(),
        space: Space::from_file(&sma_decls(), space, "space.toml").unwrap(),
        fixed: Default::default(),
        sampler,
        objective: "sharpe".into(),
        direction: Direction::Maximize,
        constraints: vec![study::Constraint::parse("trades>=5").unwrap()],
        seed,
        shard: Shard::WHOLE,
        batch: 4,
        startup: 6,
        window: Window::default(),
        data: "20 synthetic instruments".into(),
    }
}

/// The trials of a study file without their wall times (everything else repeats exactly).
fn trials_of(f: &StudyFile) -> Vec<TrialRecord> {
    f.trials.values().cloned().map(|mut t| {
        t.wall_ms = 0;
        t
    }).collect()
}

const SPACE: &str = "[fast]\nmin = 2\nmax = 20\n[slow]\nmin = 5\nmax = 60\n";

#[test]
fn a_study_repeats_whatever_the_threads_and_resumes_where_it_was_cut() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    let mut c = config(dir.path(), 3, 8);
    c.plugins[0].params.clear();
    let bench = Bench { data: &data, config: &c };
    let spec = study_spec(Sampler::Tpe, 11, SPACE);
    let quiet = |_: u64, _: u64| {};
    let one = study::optimize(&bench, &spec, 20, &dir.path().join("one.jsonl"), false, 1, &quiet).unwrap();
    let two = study::optimize(&bench, &spec, 20, &dir.path().join("two.jsonl"), false, 2, &quiet).unwrap();
    assert_eq!(one.ran, 20);
    assert_eq!(trials_of(&one.file), trials_of(&two.file), "the same seed gives the same study on 1 or 2 threads");
    // What is on disk is what was run, read back to the same bits.
    assert_eq!(trials_of(&StudyFile::read(&dir.path().join("one.jsonl")).unwrap()), trials_of(&one.file));
    // fast >= slow is refused by the plugin: recorded as failed with its reason, the study goes on.
    let failed: Vec<&TrialRecord> = one.file.trials.values().filter(|t| t.state == TrialState::Failed).collect();
    for t in &failed {
        assert!(t.reason.as_deref().unwrap().contains("must be shorter"), "{:?}", t.reason);
    }
    assert!(one.file.trials.values().filter(|t| t.state == TrialState::Complete).count() >= 10);
    // The leaderboard is the completed feasible trials, best first.
    let board = study::leaderboard(&spec, one.file.trials.values());
    assert!(board.windows(2).all(|w| w[0].value >= w[1].value));
    assert!(board.iter().all(|t| t.metrics["trades"] >= 5.0));
    // Every completed trial is its own backtest: trial 0 run by hand gives its metrics.
    let t0 = &one.file.trials[&0];
    let mut by_hand = c.clone();
    by_hand.plugins[0].params.extend(t0.params.clone());
    if let Ok(run) = backtest(&data, &by_hand, Window::default()) {
        assert_eq!(run.returns(), t0.returns);
    }

    // Cut the study after 9 trials (mid-batch), with a torn last line, then resume.
    let cut = dir.path().join("cut.jsonl");
    let text = std::fs::read_to_string(dir.path().join("one.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut by_trial: Vec<(u64, &str)> = lines.iter().map(|l| (serde_json::from_str::<serde_json::Value>(l).unwrap()["trial"].as_u64().unwrap(), *l)).collect();
    by_trial.sort();
    let mut kept = vec![header.to_owned()];
    kept.extend(by_trial[..9].iter().map(|(_, l)| l.to_string()));
    kept.push(by_trial[9].1[..40].to_owned());
    std::fs::write(&cut, kept.join("\n")).unwrap();
    assert!(StudyFile::read(&cut).unwrap().torn_tail);
    let e = study::optimize(&bench, &spec, 20, &cut, false, 2, &quiet).err().unwrap();
    assert!(matches!(e, StudyError::Exists { .. }), "{e}");
    let resumed = study::optimize(&bench, &spec, 20, &cut, true, 2, &quiet).unwrap();
    assert_eq!(resumed.ran, 11, "only the missing trials ran");
    assert_eq!(trials_of(&resumed.file), trials_of(&one.file), "a resumed study equals an uninterrupted one");
    // Another study's file is refused, naming what differs.
    let e = study::optimize(&bench, &study_spec(Sampler::Tpe, 12, SPACE), 20, &cut, true, 2, &quiet).err().unwrap();
    assert_eq!(e.to_string(), format!("{} is another study's: its seed differs (11 there, 12 here)", cut.display()));
    let mut other = spec.clone();
    other.plugin_sha256 = "another build".into();
    let e = study::optimize(&bench, &other, 20, &cut, true, 2, &quiet).err().unwrap();
    assert!(e.to_string().contains("its plugin (SHA-256) differs"), "{e}");

    // Parameters asked for again are not run again: the repeat carries the
    // first run's outcome, and counts once in the leaderboard.
    let tiny = study_spec(Sampler::Random, 1, "[fast]\nmin = 2\nmax = 3\n[slow]\nmin = 8\nmax = 9\n");
    let small = study::optimize(&bench, &tiny, 12, &dir.path().join("tiny.jsonl"), false, 2, &quiet).unwrap();
    let repeats: Vec<&TrialRecord> = small.file.trials.values().filter(|t| t.same_as.is_some()).collect();
    assert!(repeats.len() >= 8, "12 draws from 4 points repeat at least 8 times");
    for t in &repeats {
        let first = &small.file.trials[&t.same_as.unwrap()];
        assert!(first.same_as.is_none() && first.trial < t.trial);
        assert_eq!((&t.params, &t.returns, &t.metrics, t.state), (&first.params, &first.returns, &first.metrics, first.state));
    }
    assert!(study::leaderboard(&tiny, small.file.trials.values()).len() <= 4);

    // The guards beside the best: a deflated Sharpe over every trial run, and PBO.
    let g = study::guards(&one.file, 4);
    let d = g.deflated.unwrap();
    assert!(d.trials >= 10 && d.dsr >= 0.0 && d.dsr <= 1.0, "{d:?}");
    assert!(g.pbo.unwrap().pbo.is_finite());
}

#[test]
fn grid_and_random_shards_merge_into_exactly_the_unsharded_study() {
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    let mut c = config(dir.path(), 3, 8);
    c.plugins[0].params.clear();
    let bench = Bench { data: &data, config: &c };
    let quiet = |_: u64, _: u64| {};
    for (sampler, space) in [(Sampler::Random, SPACE), (Sampler::Grid, "[fast]\nmin = 2\nmax = 8\nstep = 2\n[slow]\nmin = 10\nmax = 40\nstep = 10\n")] {
        let spec = study_spec(sampler, 5, space);
        let whole = study::optimize(&bench, &spec, 16, &dir.path().join(format!("{sampler:?}.jsonl")), false, 2, &quiet).unwrap();
        let mut parts = Vec::new();
        for k in 1..=3 {
            let mut s = spec.clone();
            s.shard = Shard { k, n: 3 };
            let path = dir.path().join(format!("{sampler:?}-{k}.jsonl"));
            study::optimize(&bench, &s, 16, &path, false, 1, &quiet).unwrap();
            parts.push(path);
        }
        let (merged, note) = study::merge(&parts, &dir.path().join(format!("{sampler:?}-merged.jsonl"))).unwrap();
        assert_eq!(trials_of(&merged), trials_of(&whole.file), "{sampler:?}");
        assert!(note.contains("the same trials as the unsharded study"), "{note}");
        // A shard missing is said so; a shard of another study is refused.
        let (_, note) = study::merge(&parts[..2], &dir.path().join("partial.jsonl")).unwrap();
        assert!(note.contains("shards 3/3 are missing"), "{note}");
    }
    // The grid visits each of its 4 x 4 points once.
    let grid = StudyFile::read(&dir.path().join("Grid.jsonl")).unwrap();
    let points: std::collections::BTreeSet<String> = grid.trials.values().map(|t| format!("{:?}", t.params)).collect();
    assert_eq!(points.len(), 16);
    // TPE shards are independent sub-studies, and the merge says so.
    let mut tpe_parts = Vec::new();
    for k in 1..=2 {
        let mut s = study_spec(Sampler::Tpe, 5, SPACE);
        s.shard = Shard { k, n: 2 };
        let path = dir.path().join(format!("tpe-{k}.jsonl"));
        study::optimize(&bench, &s, 8, &path, false, 1, &quiet).unwrap();
        tpe_parts.push(path);
    }
    let (merged, note) = study::merge(&tpe_parts, &dir.path().join("tpe.jsonl")).unwrap();
    assert_eq!(merged.trials.len(), 8);
    assert!(note.contains("independent sub-study"), "{note}");
}

#[test]
fn walk_forward_measures_each_choice_only_on_the_test_part_after_it() {
    use stratbox_research::walkforward::{Plan, Span, walk_forward};
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    let mut c = config(dir.path(), 3, 8);
    c.plugins[0].params.clear();
    let bench = Bench { data: &data, config: &c };
    let spec = study_spec(Sampler::Random, 3, SPACE);
    let plan = Plan { train: Span::Days(150), test: Span::Days(60), step: Span::Days(60), anchored: false, purge: Span::Days(5), embargo: Span::Days(5) };
    let wf = walk_forward(&bench, &spec, &plan, 6, &dir.path().join("wf"), false, 2, &|_, _, _, _| {}).unwrap();
    // 400 days: a window every 60 days while its test part starts inside the
    // data: training ends on day 145 (150 less the purge), tests start on days
    // 155, 215, 275, 335 and 395, the last cut short by the data's end.
    assert_eq!(wf.windows.len(), 5);
    assert_eq!(wf.windows[4].returns.len(), 5);
    let mut last_day = i64::MIN;
    for w in &wf.windows {
        let (train, test) = (w.split.train, w.split.test);
        assert_eq!(test.from.unwrap() - train.to.unwrap(), 10 * DAY, "purge + embargo between the parts");
        assert!(w.returns.iter().all(|(t, _)| *t - 1 >= test.from.unwrap() && *t - 1 < test.to.unwrap()), "only test days count");
        assert!(w.returns.first().unwrap().0 > last_day, "test parts never overlap");
        last_day = w.returns.last().unwrap().0;
        // The chosen parameters are the training study's best, and its file holds the trials.
        let f = StudyFile::read(&w.study_file).unwrap();
        assert_eq!(f.spec.window, train);
        assert_eq!(w.params.as_ref(), study::leaderboard(&f.spec, f.trials.values()).first().map(|t| &t.params));
    }
    let stitched: Vec<f64> = wf.windows.iter().flat_map(|w| w.returns.iter().map(|r| r.1)).collect();
    assert_eq!(wf.out_of_sample.periods, stitched.len());
    assert!((wf.efficiency - wf.out_of_sample.annual_return / wf.in_sample_annual_return).abs() < 1e-12);
    assert_eq!(wf.stability.len(), 2);
}

#[test]
fn a_var_limit_in_the_research_run_moves_to_reduce_only_and_a_loose_one_changes_nothing() {
    use stratbox_trading::VarLimitConfig;
    let dir = tempfile::tempdir().unwrap();
    store(&dir.path().join("market"));
    let data = Arc::new(ReplayData::load(&dir.path().join("market"), &ReplayConfig::default()).unwrap());
    let plain = config(dir.path(), 3, 8);
    let base = backtest(&data, &plain, Window::default()).unwrap();
    assert!(!base.refused.contains_key("ReduceOnly"), "{:?}", base.refused);
    let with = |max_fraction: f64| {
        let mut c = plain.clone();
        c.risk.var_limit = Some(VarLimitConfig { confidence: 0.99, window_days: 100, min_days: 20, max_fraction, resume_at: 0.9 });
        backtest(&data, &c, Window::default()).unwrap()
    };
    // A limit no book reaches: fill for fill the same run.
    let loose = with(1.0);
    assert_eq!(loose.fills, base.fills);
    // A limit every position breaches: once 20 days are known, only reducing orders pass.
    let tight = with(1e-6);
    let refused = tight.refused.get("ReduceOnly").copied().unwrap_or(0);
    assert!(refused > 0, "{:?}", tight.refused);
    assert!(tight.fills.len() < base.fills.len());
    let start = 1_262_304_000 * NANOS_PER_SEC;
    let first_cut = base.fills.iter().zip(&tight.fills).position(|(a, b)| a != b).expect("the runs part");
    assert!(base.fills[first_cut].time >= start + 20 * DAY, "no VaR (and no limit) before 20 days of history");
}
