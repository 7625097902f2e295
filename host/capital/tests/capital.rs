//! The Capital.com client, stream, feed and collector against the mock
//! server on 127.0.0.1: login (plain and encrypted), tokens, re-login,
//! rate limits, typed errors, and a stream that survives 30+ forced
//! disconnects with nothing lost and nothing duplicated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stratbox_capital_mock::{Faults, MockConfig, MockServer};
use stratbox_capital::{
    ApiCode, CallKind, CapitalError, CapitalFeed, CapitalFeedConfig, Collector, CollectorConfig, RestClient, RestConfig, StreamConfig,
};
use stratbox_capital::CapitalCredentials;
use stratbox_market::{Feed, FeedPoll, MarketEvent};
use stratbox_market::store::{MarketStore, PriceSource, Series, StoreConfig};

fn credentials() -> CapitalCredentials {
    let a = stratbox_capital_mock::MockAccount::default();
    CapitalCredentials { api_key: a.api_key.clone(), identifier: a.identifier.clone(), password: a.password.clone() }
}

fn rest_config(mock: &MockServer, encrypt: bool) -> RestConfig {
    RestConfig { base_url: mock.base_url(), encrypt_password: encrypt, backoff_ms: 20, backoff_max_ms: 200, ..RestConfig::default() }
}

/// Market time a day back, so an accelerated clock never runs into the future.
fn yesterday() -> Option<i64> {
    Some(chrono::Utc::now().timestamp_millis() - 86_400_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn login_plain_and_encrypted_tokens_ping_and_typed_errors() {
    let rt = runtime();
    rt.block_on(async {
        let mock = MockServer::start(MockConfig { epics: vec!["AAPL".into(), "GOLD".into()], start_ms: yesterday(), ..MockConfig::default() }, "127.0.0.1:0")
            .await
            .unwrap();
        // One login per second per key: each new client backs off on the 429 until it may log in.
        let patient = |encrypt| RestConfig { backoff_ms: 300, backoff_max_ms: 1_200, ..rest_config(&mock, encrypt) };
        for encrypt in [false, true] {
            let client = RestClient::new(patient(encrypt), credentials()).unwrap();
            let session = client.login().await.unwrap();
            assert_eq!(session.account_type, "CFD");
            assert_eq!(session.streaming_host, mock.streaming_host());
            client.ping().await.unwrap();
        }
        assert_eq!(mock.stats().logins.load(Ordering::Relaxed), 2);

        // A wrong password is a typed `error.invalid.details`, plain or encrypted.
        for encrypt in [false, true] {
            let mut wrong = credentials();
            wrong.password = "not-it".into();
            let err = RestClient::new(patient(encrypt), wrong).unwrap().login().await.unwrap_err();
            assert_eq!(err.code(), Some(&ApiCode::InvalidDetails), "{err}");
            assert!(err.to_string().contains("POST /session") && err.to_string().contains("401"), "{err}");
        }
        let mut no_key = credentials();
        no_key.api_key.clear();
        let err = RestClient::new(rest_config(&mock, false), no_key).unwrap().login().await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::NullApiKey), "{err}");

        // Market data errors come back typed.
        let client = RestClient::new(patient(true), credentials()).unwrap();
        let market = client.market("GOLD").await.unwrap();
        assert_eq!(market.instrument.epic, "GOLD");
        let err = client.market("NOPE").await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::NotFoundEpic));
        let now = client.server_time().await.unwrap();
        let err = client.prices("GOLD", "MINUTE_2", now - 600_000, now - 60_000, 10).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::InvalidResolution));
        let err = client.prices("GOLD", "MINUTE", now - 600_000, now + 3_600_000, 10).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::InvalidDateRange), "a `to` in the future");
        let err = client.prices("GOLD", "MINUTE", now - 3_600_000, now - 60_000, 10).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::InvalidMaxDateRange), "a window longer than (max-1) bars");
        let err = client.prices("GOLD", "MINUTE", now - 600_000, now - 60_000, 1001).await.unwrap_err();
        assert_eq!(err.code(), Some(&ApiCode::InvalidMax));
    });
}

#[test]
fn expired_tokens_relogin_and_429s_back_off_while_the_limiter_keeps_under_the_limit() {
    let rt = runtime();
    rt.block_on(async {
        // Tokens die 1.5 s after login; every 700 ms the next 3 requests get 429.
        let faults = Faults { token_expiry_ms: Some(1_500), rate_limit_every_ms: Some(700), rate_limit_burst: 3, ..Faults::default() };
        let mock = MockServer::start(MockConfig { epics: vec!["AAPL".into()], start_ms: yesterday(), faults, ..MockConfig::default() }, "127.0.0.1:0")
            .await
            .unwrap();
        let client = Arc::new(RestClient::new(rest_config(&mock, true), credentials()).unwrap());
        let started = Instant::now();
        let mut ok = 0;
        // Bounded: 40 calls, 60 s at most.
        while ok < 40 && started.elapsed() < Duration::from_secs(60) {
            let s: serde_json::Value = client.call(reqwest::Method::GET, "/session", None::<&()>, &[], CallKind::General).await.unwrap();
            assert_eq!(s["accountId"], "12345678901234567");
            ok += 1;
        }
        assert_eq!(ok, 40);
        let stats = &client.stats;
        assert!(stats.relogins.load(Ordering::Relaxed) >= 1, "the expired session was renewed");
        assert!(stats.rate_limited.load(Ordering::Relaxed) >= 3, "429 bursts were met and retried");
        // The mock's own 10/s limiter never fired: every 429 came from the injected bursts.
        let injected_only = mock.stats().rate_limited.load(Ordering::Relaxed);
        assert_eq!(injected_only, stats.rate_limited.load(Ordering::Relaxed), "the client stayed under 10 requests/s");

        // With every request answered 429 the client gives up with a clear error.
        let faults = Faults { rate_limit_every_ms: Some(1), rate_limit_burst: 1_000, ..Faults::default() };
        let flooded = MockServer::start(MockConfig { epics: vec!["AAPL".into()], faults, ..MockConfig::default() }, "127.0.0.1:0").await.unwrap();
        let client = RestClient::new(RestConfig { max_retries: 3, ..rest_config(&flooded, false) }, credentials()).unwrap();
        let err = client.server_time().await.unwrap_err();
        assert!(matches!(err, CapitalError::RateLimited { attempts: 4, .. }), "{err}");
    });
}

#[test]
fn callers_that_find_the_session_dead_at_once_log_in_once() {
    let rt = runtime();
    rt.block_on(async {
        let mock = MockServer::start(MockConfig { epics: vec!["AAPL".into()], start_ms: yesterday(), ..MockConfig::default() }, "127.0.0.1:0").await.unwrap();
        let client = Arc::new(RestClient::new(rest_config(&mock, false), credentials()).unwrap());
        client.login().await.unwrap();
        let callers = 6;
        for round in 1..=3u64 {
            mock.expire_sessions();
            let before = mock.stats().logins.load(Ordering::Relaxed);
            // Released together: each finds the session dead (401) and asks for a re-login.
            let start = Arc::new(tokio::sync::Barrier::new(callers));
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (client, start) = (client.clone(), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        client.call::<(), serde_json::Value>(reqwest::Method::GET, "/session", None, &[], CallKind::General).await
                    })
                })
                .collect();
            for t in tasks {
                let s = tokio::time::timeout(Duration::from_secs(20), t).await.expect("bounded").unwrap().unwrap();
                assert_eq!(s["accountId"], "12345678901234567");
            }
            let logins = mock.stats().logins.load(Ordering::Relaxed) - before;
            assert_eq!(logins, 1, "round {round}: {callers} callers, one login");
            assert_eq!(mock.stats().expired_tokens.load(Ordering::Relaxed) + mock.stats().failed_logins.load(Ordering::Relaxed), 0, "sessions were dropped, not expired by time");
            assert_eq!(client.stats.relogins.load(Ordering::Relaxed), round);
        }
    });
}

/// Minute bars of one side from the store, by open time (ms).
fn stored(store: &MarketStore, epic: &str, side: PriceSource) -> BTreeMap<i64, [f64; 4]> {
    let id = store.instrument_id_of(epic).expect("epic stored");
    store
        .range(id, Series::Bars { period_secs: 60, source: side }, i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.time / 1_000_000, [r.fields[0], r.fields[1], r.fields[2], r.fields[3]]))
        .collect()
}

#[test]
fn thirty_forced_disconnects_lose_and_duplicate_nothing() {
    let epics: Vec<String> = ["AAPL", "GOLD", "EURUSD"].map(String::from).to_vec();
    let rt = runtime();
    let faults = Faults {
        drop_stream_every_ms: Some(600),
        rate_limit_every_ms: Some(2_000),
        rate_limit_burst: 2,
        token_expiry_ms: Some(5_000),
        malformed_every: Some(97),
        future_frame_every: Some(41),
        ..Faults::default()
    };
    // Five market minutes per wall second.
    let config = MockConfig { epics: epics.clone(), speed: 300.0, start_ms: yesterday(), faults, ..MockConfig::default() };
    let mock = rt.block_on(MockServer::start(config, "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = MarketStore::open(&dir.path().join("market"), StoreConfig::default()).unwrap();
    let collector = Collector::new(store, CollectorConfig { backup_every_secs: None, ..CollectorConfig::default() });
    let feed_config = CapitalFeedConfig {
        epics: epics.clone(),
        rest: rest_config(&mock, true),
        // The mock's clock runs 300x: the default 60 s of skew is 0.2 s of wall time, which a busy
        // machine exceeds between two reads. 10 market minutes (2 wall seconds) still rejects the
        // injected frames, stamped a day ahead.
        stream: StreamConfig { reconnect_min_ms: 20, reconnect_max_ms: 500, max_skew_ms: 600_000, ..StreamConfig::default() },
        ..CapitalFeedConfig::default()
    };
    let mut feed = CapitalFeed::connect(&feed_config, credentials(), Some(collector)).unwrap();
    assert_eq!(feed.instruments().iter().map(|i| i.symbol.as_str()).collect::<Vec<_>>(), ["AAPL", "GOLD", "EURUSD"]);
    assert!(feed.trading_hours(1).is_some_and(|h| h.is_open(chrono::Utc::now().timestamp_nanos_opt().unwrap())), "the mock trades around the clock");
    let started = Instant::now();
    let (mut quotes, mut bars) = (0u64, 0u64);
    // The newest quote of each epic that came through (a future-dated frame must not silence one).
    let mut last_quote = vec![0i64; epics.len()];
    // Bounded: until 32 drops, or 150 s.
    while mock.stats().streams_dropped.load(Ordering::Relaxed) < 32 && started.elapsed() < Duration::from_secs(150) {
        match feed.poll_event(Duration::from_millis(50)) {
            FeedPoll::Event(MarketEvent::Quote(q)) => {
                assert!(q.bid < q.ask);
                assert!(q.time / 1_000_000 <= mock.market_time_ms() + 60_000, "a future-dated quote came through: {q:?}");
                last_quote[q.instrument as usize] = last_quote[q.instrument as usize].max(q.time / 1_000_000);
                quotes += 1;
            }
            FeedPoll::Event(MarketEvent::Bars(b)) => bars += b.len() as u64,
            FeedPoll::Idle => {}
            FeedPoll::Ended => panic!("the feed ended"),
        }
    }
    let drops = mock.stats().streams_dropped.load(Ordering::Relaxed);
    assert!(drops >= 30, "only {drops} disconnects in {:?}", started.elapsed());
    // Let the last reconnect's backfill land, then stop.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        if let FeedPoll::Event(MarketEvent::Quote(q)) = feed.poll_event(Duration::from_millis(50)) {
            last_quote[q.instrument as usize] = last_quote[q.instrument as usize].max(q.time / 1_000_000);
        }
    }
    let now = mock.market_time_ms();
    let stream = feed.stream_stats();
    let (malformed, backfilled, duplicates) =
        (stream.malformed_frames.load(Ordering::Relaxed), stream.backfilled_bars.load(Ordering::Relaxed), stream.duplicate_bars.load(Ordering::Relaxed));
    eprintln!(
        "{drops} drops, {} connections, {quotes} quotes, {bars} mid bars, {backfilled} bar sides backfilled, {duplicates} duplicates dropped, {malformed} malformed frames skipped, {} logins",
        stream.connections.load(Ordering::Relaxed),
        mock.stats().logins.load(Ordering::Relaxed)
    );
    assert!(malformed > 0, "malformed frames were injected and skipped");
    let future = stream.future_frames.load(Ordering::Relaxed);
    assert!(future > 0 && future <= mock.stats().future_frames_sent.load(Ordering::Relaxed), "future-dated frames were injected and rejected: {future}");
    // Every epic still quoted at the end: nothing was silenced by a frame from the future.
    for (e, epic) in epics.iter().enumerate() {
        assert!(now - last_quote[e] < 10 * 60_000, "{epic}'s last quote is {} market s old", (now - last_quote[e]) / 1000);
    }
    assert!(backfilled > 0, "gaps were backfilled");
    assert!(mock.stats().expired_tokens.load(Ordering::Relaxed) > 0, "tokens expired and the client logged in again");
    let collector = feed.collector_mut().unwrap();
    collector.finish().unwrap();
    assert_eq!(collector.stats.rejected, 0, "nothing from the mock is invalid");
    let truth = mock.ground_truth();
    let store = feed.collector().unwrap().store();
    for (e, epic) in epics.iter().enumerate() {
        for side in [PriceSource::Bid, PriceSource::Ask] {
            let got = stored(store, epic, side);
            let (first, last) = (*got.keys().next().unwrap(), *got.keys().next_back().unwrap());
            let want: BTreeMap<i64, [f64; 4]> = truth.minutes[e]
                .iter()
                .filter(|b| b.t >= first && b.t <= last)
                .map(|b| {
                    let o = if side == PriceSource::Bid { b.bid } else { b.ask };
                    (b.t, [o.open, o.high, o.low, o.close])
                })
                .collect();
            assert!(got.len() >= 30, "{epic} {side:?}: only {} bars", got.len());
            let missing: Vec<_> = want.keys().filter(|t| !got.contains_key(t)).collect();
            let extra: Vec<_> = got.keys().filter(|t| !want.contains_key(t)).collect();
            assert!(missing.is_empty() && extra.is_empty(), "{epic} {side:?}: missing {missing:?}, extra {extra:?}");
            for (t, w) in &want {
                let g = got[t];
                assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() < 1e-9), "{epic} {side:?} bar {t}: stored {g:?}, published {w:?}");
            }
        }
    }
}

#[test]
fn the_collector_quarantines_bad_records_and_backs_up_on_schedule() {
    use stratbox_capital::StreamEvent;
    use stratbox_market::{Bar, Instrument, InstrumentMeta, Quote, TradingHours};
    use stratbox_market::store::restore;

    let dir = tempfile::tempdir().unwrap();
    let store = MarketStore::open(&dir.path().join("market"), StoreConfig::default()).unwrap();
    let backups = dir.path().join("backups");
    let config = CollectorConfig { backup_every_secs: Some(1), backups_kept: 2, backup_dir: Some(backups.clone()), ..CollectorConfig::default() };
    let mut collector = Collector::new(store, config);
    let hours = TradingHours::from_capital(&serde_json::json!({ "mon": ["00:00 - 22:00"], "sun": ["23:05 - 00:00"], "zone": "UTC" })).unwrap();
    let gold = InstrumentMeta::new(&Instrument { id: 0, symbol: "GOLD".into(), tick_size: 0.01, lot_size: 0.1, currency: "USD".into() }, Some(hours));
    assert!(collector.bind(std::slice::from_ref(&gold)).unwrap().is_empty(), "nothing stored yet, nothing to resume from");
    assert_eq!(collector.store().meta("GOLD").unwrap().as_ref(), Some(&gold), "metadata recorded with the data");
    let t0 = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 3_600_000_000_000;
    let received = Instant::now();
    let quote = |k: i64, bid: f64, ask: f64| StreamEvent::Quote { quote: Quote { instrument: 0, time: t0 + k * 1_000_000_000, bid, bid_size: 5.0, ask, ask_size: 5.0 }, received };
    let bar = |k: i64, side, low: f64| StreamEvent::Bar {
        bar: Bar { instrument: 0, start: t0 + k * 60_000_000_000, period_secs: 60, open: 100.0, high: 101.0, low, close: 100.5, volume: 0.0 },
        side,
        backfilled: false,
        received,
    };
    for e in [quote(0, 100.0, 100.1), quote(1, 100.2, 100.1), quote(2, f64::NAN, 100.1), quote(3, 100.1, 100.2)] {
        collector.record(&e).unwrap();
    }
    for e in [bar(0, PriceSource::Bid, 99.5), bar(0, PriceSource::Ask, 99.6), bar(1, PriceSource::Bid, 100.8)] {
        collector.record(&e).unwrap();
    }
    assert_eq!(collector.stats.quotes_stored, 2);
    assert_eq!(collector.stats.bars_stored, 2);
    assert_eq!(collector.stats.rejected, 3, "a crossed quote, a NaN bid, and a bar whose low is above its open");
    assert_eq!(collector.store().quarantined(), 3);

    // Three scheduled backups, at most two kept; the newest restores to what is stored.
    let deadline = Instant::now() + Duration::from_secs(10);
    while collector.stats.backups < 3 && Instant::now() < deadline {
        collector.tick().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(collector.stats.backups, 3);
    let mut archives: Vec<_> = std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().path()).collect();
    archives.sort();
    assert_eq!(archives.len(), 2, "{archives:?}");
    let restored = dir.path().join("restored");
    restore(archives.last().unwrap(), &restored).unwrap();
    let copy = MarketStore::open(&restored, StoreConfig::default()).unwrap();
    assert_eq!(stored(&copy, "GOLD", PriceSource::Bid).len(), 1);
    assert_eq!(stored(&copy, "GOLD", PriceSource::Ask).len(), 1);
    assert_eq!(copy.quarantined(), 3);

    // A collector on the same store resumes from the newest stored bars.
    drop(copy);
    drop(collector);
    let store = MarketStore::open(&dir.path().join("market"), StoreConfig::default()).unwrap();
    let mut again = Collector::new(store, CollectorConfig::default());
    let resume = again.bind(&[gold]).unwrap();
    assert_eq!(resume.get(&(0, PriceSource::Bid)), Some(&(t0 / 1_000_000)));
    assert_eq!(resume.get(&(0, PriceSource::Ask)), Some(&(t0 / 1_000_000)));
}

#[test]
fn the_mock_replays_stored_bars_and_the_collector_gets_them_back() {
    use stratbox_capital_mock::MockReplay;
    use stratbox_market::Bar;

    // Two symbols, 90 minute bars each, on 2013-10-08 from 13:30 UTC.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let t0 = 1_381_239_000_000_000_000i64;
    let mut original: BTreeMap<(String, i64), Bar> = BTreeMap::new();
    {
        let mut store = MarketStore::open(&source, StoreConfig::default()).unwrap();
        for (symbol, base) in [("SPY", 168.0), ("QQQ", 80.0)] {
            let id = store.instrument_id(symbol).unwrap();
            for k in 0..90i64 {
                let p = base + (k as f64 / 7.0).sin();
                let b = Bar { instrument: id, start: t0 + k * 60_000_000_000, period_secs: 60, open: p, high: p + 0.2, low: p - 0.15, close: p + 0.05, volume: 1000.0 };
                store.append_bar(&b, PriceSource::Trade).unwrap();
                original.insert((symbol.to_owned(), b.start / 1_000_000), b);
            }
        }
        store.seal_all().unwrap();
    }
    let rt = runtime();
    let replay = MockReplay { store: source, period_secs: 60, source: PriceSource::Trade, spread_bps: 2.0 };
    // Ten minutes of market time per wall second: the 90 minutes take 9 s.
    let config = MockConfig { epics: Vec::new(), replay: Some(replay), speed: 600.0, ..MockConfig::default() };
    let mock = rt.block_on(MockServer::start(config, "127.0.0.1:0")).unwrap();
    assert_eq!(mock.market_time_ms() / 60_000, t0 / 60_000_000_000, "the clock starts at the first bar");
    let store = MarketStore::open(&dir.path().join("collected"), StoreConfig::default()).unwrap();
    let collector = Collector::new(store, CollectorConfig { backup_every_secs: None, ..CollectorConfig::default() });
    let feed_config = CapitalFeedConfig { epics: vec!["QQQ".into(), "SPY".into()], rest: rest_config(&mock, true), ..CapitalFeedConfig::default() };
    let mut feed = CapitalFeed::connect(&feed_config, credentials(), Some(collector)).unwrap();
    let started = Instant::now();
    // Bounded: until the replay's last minute has closed (plus a second), or 30 s.
    while mock.market_time_ms() < t0 / 1_000_000 + 91 * 60_000 + 30_000 && started.elapsed() < Duration::from_secs(30) {
        let _ = feed.poll_event(Duration::from_millis(50));
    }
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(2) {
        let _ = feed.poll_event(Duration::from_millis(50));
    }
    feed.collector_mut().unwrap().finish().unwrap();
    let truth = mock.ground_truth();
    let store = feed.collector().unwrap().store();
    for (e, epic) in truth.epics.iter().enumerate() {
        let bids = stored(store, epic, PriceSource::Bid);
        let asks = stored(store, epic, PriceSource::Ask);
        // The stream starts with the newest closed bar when it connects: a few minutes in.
        assert!(bids.len() >= 60, "{epic}: {} of 90 minutes collected", bids.len());
        assert_eq!(*bids.keys().next_back().unwrap(), t0 / 1_000_000 + 89 * 60_000, "{epic}: up to the last minute");
        for (t, bid) in &bids {
            let ask = asks[t];
            let truth = truth.minutes[e].iter().find(|b| b.t == *t).unwrap();
            let published = [truth.bid.open, truth.bid.high, truth.bid.low, truth.bid.close];
            assert!(bid.iter().zip(&published).all(|(a, b)| (a - b).abs() < 1e-9), "{epic} {t}: stored {bid:?}, published {published:?}");
            // The replayed bar sits inside the spread the mock put around it.
            let o = &original[&(epic.clone(), *t)];
            for (k, price) in [o.open, o.high, o.low, o.close].into_iter().enumerate() {
                assert!(bid[k] <= price + 1e-9 && ask[k] >= price - 1e-9 && ask[k] - bid[k] <= 0.05, "{epic} {t} field {k}: {} / {} around {price}", bid[k], ask[k]);
            }
        }
    }
}

#[test]
fn a_slow_server_is_a_named_timeout_and_a_patient_client_gets_its_answer() {
    let rt = runtime();
    rt.block_on(async {
        let faults = Faults { slow_ms: Some(400), ..Faults::default() };
        let mock = MockServer::start(MockConfig { epics: vec!["AAPL".into()], faults, ..MockConfig::default() }, "127.0.0.1:0").await.unwrap();
        let hasty = RestClient::new(RestConfig { timeout_ms: 100, ..rest_config(&mock, false) }, credentials()).unwrap();
        let err = hasty.server_time().await.unwrap_err();
        assert!(matches!(err, CapitalError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("GET /time") && err.to_string().contains("no answer within 100ms"), "{err}");
        let patient = RestClient::new(RestConfig { timeout_ms: 5_000, ..rest_config(&mock, false) }, credentials()).unwrap();
        assert!(patient.server_time().await.unwrap() > 0);
    });
}
