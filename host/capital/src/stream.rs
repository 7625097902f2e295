//! The Capital.com price stream: quotes and closed OHLC bars for any number
//! of epics, kept whole across disconnects.
//!
//! One connection; `marketData.subscribe` and `OHLCMarketData.subscribe` in
//! batches of at most 40 epics. A ping every `ping_secs` (the server drops a
//! stream after 10 silent minutes); no frame for `stale_secs` counts as a dead
//! connection. On any loss: reconnect with exponential backoff and full
//! jitter, log in again if the session died, resubscribe, then backfill the
//! bars that closed meanwhile through `GET /prices` *before* reading the new
//! stream (subscription first, then the server's time T, then bars closed by
//! T: a bar closing later is pushed by the stream, so none falls in between).
//! Bars are de-duplicated by (epic, side, open time): a bar the backfill and
//! the stream both deliver is passed on once. Quotes cannot be backfilled;
//! repeated or older quotes are dropped and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::error::{ApiCode, CapitalError};
use super::rest::{RestClient, Tokens};
use super::wire::{self, ClientFrame, OhlcPush, QuotePush, ServerFrame};
use stratbox_market::{Bar, InstrumentId, Quote};
use stratbox_market::store::PriceSource;

/// Most epics per subscribe message the API accepts.
pub const MAX_EPICS_PER_SUBSCRIPTION: usize = 40;
/// Most bars per `GET /prices`.
const MAX_PRICES: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Bar resolution streamed and backfilled (`MINUTE`, `MINUTE_5`, ... `DAY`).
    pub resolution: String,
    pub quotes: bool,
    pub bars: bool,
    /// Replaces the session's `streamingHost` (its `connect` path is kept).
    pub url: Option<String>,
    pub ping_secs: u64,
    /// No frame at all for this long: the connection is dead.
    pub stale_secs: u64,
    pub reply_timeout_ms: u64,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    pub backfill: bool,
    /// How far ahead of the market's clock a frame may be stamped. Beyond it
    /// the frame is rejected and counted, and moves no watermark: one
    /// future-dated quote must not silence an instrument for the session.
    pub max_skew_ms: i64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            resolution: "MINUTE".into(),
            quotes: true,
            bars: true,
            url: None,
            ping_secs: 60,
            stale_secs: 90,
            reply_timeout_ms: 10_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 30_000,
            backfill: true,
            max_skew_ms: 60_000,
        }
    }
}

/// Seconds of a resolution name.
pub fn resolution_secs(resolution: &str) -> Option<u32> {
    Some(match resolution {
        "MINUTE" => 60,
        "MINUTE_5" => 300,
        "MINUTE_15" => 900,
        "MINUTE_30" => 1800,
        "HOUR" => 3600,
        "HOUR_4" => 14_400,
        "DAY" => 86_400,
        "WEEK" => 604_800,
        _ => return None,
    })
}

/// What the stream delivers, with the instant its frame was read.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Quote { quote: Quote, received: Instant },
    /// One side (bid or ask) of a closed bar; `backfilled` when it came from `GET /prices`.
    Bar { bar: Bar, side: PriceSource, backfilled: bool, received: Instant },
    Connected { connection: u64 },
    Disconnected { reason: String },
}

/// Counters of the stream (shared with whoever reports them).
#[derive(Debug, Default, Serialize)]
pub struct StreamStats {
    pub connections: AtomicU64,
    pub disconnects: AtomicU64,
    pub frames: AtomicU64,
    pub quotes: AtomicU64,
    pub bars: AtomicU64,
    pub backfilled_bars: AtomicU64,
    pub duplicate_bars: AtomicU64,
    pub stale_quotes: AtomicU64,
    pub malformed_frames: AtomicU64,
    /// Frames stamped past the clock by more than `max_skew_ms` (or out of range).
    pub future_frames: AtomicU64,
    pub pings: AtomicU64,
}

/// Why one connection ended.
enum Ended {
    Lost(String),
    SessionExpired(Tokens),
    Stopped,
}

pub struct PriceStream {
    rest: Arc<RestClient>,
    config: StreamConfig,
    epics: Vec<String>,
    index: HashMap<String, InstrumentId>,
    period_ms: i64,
    /// Open time (ms) of the newest bar passed on, per (instrument, side).
    last_bar: HashMap<(InstrumentId, PriceSource), i64>,
    last_quote: HashMap<InstrumentId, (i64, f64, f64)>,
    /// The server's time (ms) when it was last read, and when that was.
    server_clock: Option<(i64, Instant)>,
    /// The newest time (ms) of any frame accepted: the clock when the
    /// server runs faster than the wall (the mock, accelerated).
    newest_ms: i64,
    correlation: u64,
    pub stats: Arc<StreamStats>,
    stop: Arc<AtomicBool>,
}

impl PriceStream {
    /// A stream of `epics` (instrument `i` is `epics[i]`). `resume` gives the
    /// open time (ms) of the newest bar already held per (instrument, side),
    /// so the first connection backfills from there.
    pub fn new(rest: Arc<RestClient>, config: StreamConfig, epics: Vec<String>, resume: HashMap<(InstrumentId, PriceSource), i64>) -> Result<Self, CapitalError> {
        let period = resolution_secs(&config.resolution)
            .ok_or_else(|| CapitalError::Stream(format!("unknown resolution `{}` (MINUTE, MINUTE_5, MINUTE_15, MINUTE_30, HOUR, HOUR_4, DAY, WEEK)", config.resolution)))?;
        if epics.is_empty() {
            return Err(CapitalError::Stream("no epics to stream".into()));
        }
        let index = epics.iter().enumerate().map(|(i, e)| (e.clone(), i as InstrumentId)).collect();
        Ok(Self {
            rest,
            period_ms: i64::from(period) * 1000,
            config,
            epics,
            index,
            newest_ms: resume.values().copied().max().unwrap_or(i64::MIN),
            last_bar: resume,
            last_quote: HashMap::new(),
            server_clock: None,
            correlation: 0,
            stats: Arc::default(),
            stop: Arc::default(),
        })
    }

    /// Set to end [`PriceStream::run`].
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Streams into `tx` until stopped or the receiver is gone, reconnecting
    /// forever; only a failed first login (bad credentials) is returned as an error.
    pub async fn run(mut self, tx: std::sync::mpsc::Sender<StreamEvent>) -> Result<(), CapitalError> {
        let mut failures = 0u32;
        let mut ever_connected = false;
        while !self.stop.load(Ordering::Relaxed) {
            match self.connection(&tx).await {
                Ok(Ended::Stopped) => return Ok(()),
                Ok(Ended::Lost(reason)) => {
                    ever_connected = true;
                    self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(reason = %reason, "price stream lost; reconnecting");
                    if tx.send(StreamEvent::Disconnected { reason }).is_err() {
                        return Ok(());
                    }
                    failures = 0;
                }
                Ok(Ended::SessionExpired(tokens)) => {
                    self.stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self.rest.renew_session(&tokens).await {
                        tracing::warn!(error = %e, "cannot log in again after the stream's session expired");
                    }
                }
                Err(e) => {
                    // Bad credentials will not get better by retrying.
                    if !ever_connected && matches!(e.code(), Some(ApiCode::InvalidDetails | ApiCode::NullApiKey)) {
                        return Err(e);
                    }
                    failures += 1;
                    tracing::warn!(error = %e, attempt = failures, "price stream connection failed");
                }
            }
            let wait = self.backoff(failures);
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Full jitter over an exponentially growing ceiling.
    fn backoff(&self, failures: u32) -> Duration {
        let ceiling = self.config.reconnect_min_ms.saturating_mul(1 << failures.min(16)).min(self.config.reconnect_max_ms).max(1);
        Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
    }

    fn frame(&mut self, tokens: &Tokens, destination: &str, payload: serde_json::Value) -> (String, Message) {
        self.correlation += 1;
        let id = self.correlation.to_string();
        let frame = ClientFrame {
            destination: destination.into(),
            correlation_id: id.clone(),
            cst: tokens.cst.to_string(),
            security_token: tokens.security_token.to_string(),
            payload,
        };
        (id, Message::text(serde_json::to_string(&frame).expect("frames serialise")))
    }

    /// One connection: connect, subscribe, backfill, then read until it ends.
    async fn connection(&mut self, tx: &std::sync::mpsc::Sender<StreamEvent>) -> Result<Ended, CapitalError> {
        let (tokens, host) = self.rest.session().await?;
        let base = self.config.url.clone().unwrap_or(host);
        let url = format!("{}/connect", base.trim_end_matches('/').trim_end_matches("/connect"));
        let (mut ws, _) = tokio::time::timeout(Duration::from_millis(self.config.reply_timeout_ms), tokio_tungstenite::connect_async(url.as_str()))
            .await
            .map_err(|_| CapitalError::Stream(format!("connecting to {url} timed out")))?
            .map_err(|e| CapitalError::Stream(format!("cannot connect to {url}: {e}")))?;
        let connection = self.stats.connections.fetch_add(1, Ordering::Relaxed) + 1;

        // Subscribe, batch by batch, waiting for each reply.
        let epics = self.epics.clone();
        for batch in epics.chunks(MAX_EPICS_PER_SUBSCRIPTION) {
            let mut requests = Vec::new();
            if self.config.quotes {
                requests.push(("marketData.subscribe", serde_json::json!({ "epics": batch })));
            }
            if self.config.bars {
                requests.push(("OHLCMarketData.subscribe", serde_json::json!({ "epics": batch, "resolutions": [self.config.resolution], "type": "classic" })));
            }
            for (destination, payload) in requests {
                let (id, msg) = self.frame(&tokens, destination, payload);
                ws.send(msg).await.map_err(|e| CapitalError::Stream(format!("subscribe: {e}")))?;
                match self.await_reply(&mut ws, &id, &tokens, tx).await? {
                    Ok(()) => {}
                    Err(ended) => return Ok(ended),
                }
            }
        }
        if tx.send(StreamEvent::Connected { connection }).is_err() {
            return Ok(Ended::Stopped);
        }
        if self.config.bars && self.config.backfill {
            self.backfill(tx).await?;
        } else {
            // The clock frames are judged against (backfilling reads it too).
            self.server_clock = Some((self.rest.server_time().await?, Instant::now()));
        }

        let ping_every = Duration::from_secs(self.config.ping_secs.max(1));
        let stale = Duration::from_secs(self.config.stale_secs.max(1));
        let mut next_ping = tokio::time::Instant::now() + ping_every;
        let mut last_frame = tokio::time::Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                let _ = ws.close(None).await;
                return Ok(Ended::Stopped);
            }
            let deadline = next_ping.min(last_frame + stale).min(tokio::time::Instant::now() + Duration::from_millis(200));
            let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => {
                    let now = tokio::time::Instant::now();
                    if now >= last_frame + stale {
                        return Ok(Ended::Lost(format!("no frame for {} s", stale.as_secs())));
                    }
                    if now >= next_ping {
                        let (_, ping) = self.frame(&tokens, "ping", serde_json::json!({}));
                        self.stats.pings.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = ws.send(ping).await {
                            return Ok(Ended::Lost(format!("ping: {e}")));
                        }
                        next_ping = now + ping_every;
                    }
                    continue;
                }
                Ok(None) => return Ok(Ended::Lost("the server closed the stream".into())),
                Ok(Some(Err(e))) => return Ok(Ended::Lost(e.to_string())),
                Ok(Some(Ok(m))) => m,
            };
            let received = Instant::now();
            last_frame = tokio::time::Instant::now();
            let text = match msg {
                Message::Text(t) => t,
                Message::Close(_) => return Ok(Ended::Lost("the server closed the stream".into())),
                _ => continue,
            };
            self.stats.frames.fetch_add(1, Ordering::Relaxed);
            match self.on_frame(text.as_str(), received, &tokens) {
                Ok(events) => {
                    for e in events {
                        if tx.send(e).is_err() {
                            return Ok(Ended::Stopped);
                        }
                    }
                }
                Err(ended) => return Ok(ended),
            }
        }
    }

    /// Reads frames until the reply to `id`; pushes read meanwhile are handled.
    async fn await_reply<S>(&mut self, ws: &mut S, id: &str, tokens: &Tokens, tx: &std::sync::mpsc::Sender<StreamEvent>) -> Result<Result<(), Ended>, CapitalError>
    where
        S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.reply_timeout_ms);
        loop {
            let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => return Err(CapitalError::Stream(format!("no reply to subscription {id}"))),
                Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return Ok(Err(Ended::Lost("closed while subscribing".into()))),
                Ok(Some(Err(e))) => return Ok(Err(Ended::Lost(e.to_string()))),
                Ok(Some(Ok(Message::Text(t)))) => t,
                Ok(Some(Ok(_))) => continue,
            };
            let Ok(frame) = serde_json::from_str::<ServerFrame>(msg.as_str()) else {
                self.stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if frame.correlation_id.as_deref() == Some(id) {
                if frame.status != "OK" {
                    let code = error_code(&frame);
                    if code.is_session_expired() {
                        return Ok(Err(Ended::SessionExpired(tokens.clone())));
                    }
                    return Err(CapitalError::Stream(format!("{} refused: {code}", frame.destination)));
                }
                let rejected: Vec<String> = frame
                    .payload
                    .get("subscriptions")
                    .and_then(|s| s.as_object())
                    .map(|m| m.iter().filter(|(_, v)| v.as_str() != Some("PROCESSED")).map(|(k, v)| format!("{k}: {v}")).collect())
                    .unwrap_or_default();
                if !rejected.is_empty() {
                    tracing::warn!(rejected = ?rejected, "some subscriptions were not processed");
                }
                return Ok(Ok(()));
            }
            // A push that raced the reply.
            if let Ok(events) = self.on_frame(msg.as_str(), Instant::now(), tokens) {
                for e in events {
                    let _ = tx.send(e);
                }
            }
        }
    }

    /// Turns one text frame into events (after de-duplication).
    fn on_frame(&mut self, text: &str, received: Instant, tokens: &Tokens) -> Result<Vec<StreamEvent>, Ended> {
        let frame = match serde_json::from_str::<ServerFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                self.stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "malformed frame skipped");
                return Ok(Vec::new());
            }
        };
        if frame.status != "OK" {
            let code = error_code(&frame);
            if code.is_session_expired() {
                return Err(Ended::SessionExpired(tokens.clone()));
            }
            tracing::warn!(destination = %frame.destination, code = %code, "error frame");
            return Ok(Vec::new());
        }
        let malformed = |this: &Self, what: &str, e: serde_json::Error| {
            this.stats.malformed_frames.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "malformed {what} push skipped");
            Ok(Vec::new())
        };
        match frame.destination.as_str() {
            "quote" => {
                let q = match QuotePush::deserialize(&frame.payload) {
                    Ok(q) => q,
                    Err(e) => return malformed(self, "quote", e),
                };
                let Some(&instrument) = self.index.get(q.epic) else { return Ok(Vec::new()) };
                let Some(time) = self.admit(q.timestamp) else { return Ok(Vec::new()) };
                let key = (q.timestamp, q.bid, q.ofr);
                if let Some(last) = self.last_quote.get(&instrument)
                    && (q.timestamp < last.0 || key == *last)
                {
                    self.stats.stale_quotes.fetch_add(1, Ordering::Relaxed);
                    return Ok(Vec::new());
                }
                self.last_quote.insert(instrument, key);
                self.stats.quotes.fetch_add(1, Ordering::Relaxed);
                let quote = Quote { instrument, time, bid: q.bid, bid_size: q.bid_qty, ask: q.ofr, ask_size: q.ofr_qty };
                Ok(vec![StreamEvent::Quote { quote, received }])
            }
            "ohlc.event" => {
                let o = match OhlcPush::deserialize(&frame.payload) {
                    Ok(o) => o,
                    Err(e) => return malformed(self, "ohlc", e),
                };
                if o.resolution != self.config.resolution || o.kind != "classic" {
                    return Ok(Vec::new());
                }
                let Some(&instrument) = self.index.get(o.epic) else { return Ok(Vec::new()) };
                let side = match o.price_type {
                    "bid" => PriceSource::Bid,
                    "ask" | "ofr" => PriceSource::Ask,
                    _ => return Ok(Vec::new()),
                };
                let Some(start) = self.admit(o.t) else { return Ok(Vec::new()) };
                let bar = Bar { instrument, start, period_secs: (self.period_ms / 1000) as u32, open: o.o, high: o.h, low: o.l, close: o.c, volume: 0.0 };
                Ok(self.pass_bar(bar, side, false, received).into_iter().collect())
            }
            _ => Ok(Vec::new()), // replies to pings, unknown pushes
        }
    }

    /// A frame's time (ms) in nanoseconds, unless it is further ahead of the
    /// market's clock than `max_skew_ms` or out of range: then it is counted
    /// and `None`, and nothing it says moves a watermark.
    fn admit(&mut self, t_ms: i64) -> Option<i64> {
        let wall = self.server_clock.map(|(server, at)| server.saturating_add(at.elapsed().as_millis() as i64));
        let now = wall.into_iter().chain((self.newest_ms > i64::MIN).then_some(self.newest_ms)).max();
        let ns = t_ms.checked_mul(1_000_000);
        if ns.is_none() || now.is_some_and(|now| t_ms > now.saturating_add(self.config.max_skew_ms)) {
            self.stats.future_frames.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(t_ms, clock_ms = now, "frame stamped past the clock; rejected");
            return None;
        }
        self.newest_ms = self.newest_ms.max(t_ms);
        ns
    }

    /// The bar, unless one at or after its open time was already passed on.
    fn pass_bar(&mut self, bar: Bar, side: PriceSource, backfilled: bool, received: Instant) -> Option<StreamEvent> {
        let t = bar.start / 1_000_000;
        let last = self.last_bar.entry((bar.instrument, side)).or_insert(i64::MIN);
        if t <= *last {
            self.stats.duplicate_bars.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = t;
        self.stats.bars.fetch_add(1, Ordering::Relaxed);
        if backfilled {
            self.stats.backfilled_bars.fetch_add(1, Ordering::Relaxed);
        }
        Some(StreamEvent::Bar { bar, side, backfilled, received })
    }

    /// Bars closed by the server's current time that were missed, per epic,
    /// from `GET /prices` in pages of at most 1000.
    async fn backfill(&mut self, tx: &std::sync::mpsc::Sender<StreamEvent>) -> Result<(), CapitalError> {
        let now = self.rest.server_time().await?;
        self.server_clock = Some((now, Instant::now()));
        let p = self.period_ms;
        // The newest bar that has closed by `now`.
        let last_closed = (now.div_euclid(p) - 1) * p;
        for (i, epic) in self.epics.clone().iter().enumerate() {
            let i = i as InstrumentId;
            let held = [PriceSource::Bid, PriceSource::Ask].map(|s| self.last_bar.get(&(i, s)).copied());
            let from = match held {
                [Some(b), Some(a)] => b.min(a).saturating_add(p),
                // Nothing held yet: start with the newest closed bar; the stream brings the rest.
                _ => last_closed,
            };
            let mut start = from;
            while start <= last_closed {
                let end = (start + (MAX_PRICES - 1) * p).min(last_closed);
                let prices = match self.rest.prices(epic, &self.config.resolution, start, end, MAX_PRICES as u32).await {
                    Ok(r) => r.prices,
                    Err(e) if e.code() == Some(&ApiCode::PricesNotFound) => Vec::new(),
                    Err(e) => return Err(e),
                };
                let received = Instant::now();
                for pb in prices {
                    let Some(t) = wire::parse_wire_time(&pb.snapshot_time_utc) else {
                        return Err(CapitalError::Protocol { endpoint: format!("GET /prices/{epic}"), why: format!("bad snapshotTimeUTC `{}`", pb.snapshot_time_utc) });
                    };
                    if t < start || t > end {
                        continue;
                    }
                    for (side, pick) in [(PriceSource::Bid, 0), (PriceSource::Ask, 1)] {
                        let v = |x: wire::BidAsk| if pick == 0 { x.bid } else { x.ask };
                        let bar = Bar {
                            instrument: i,
                            start: t * 1_000_000,
                            period_secs: (p / 1000) as u32,
                            open: v(pb.open_price),
                            high: v(pb.high_price),
                            low: v(pb.low_price),
                            close: v(pb.close_price),
                            volume: 0.0,
                        };
                        if let Some(e) = self.pass_bar(bar, side, true, received) {
                            let _ = tx.send(e);
                        }
                    }
                }
                start = end + p;
            }
        }
        Ok(())
    }
}

fn error_code(frame: &ServerFrame) -> ApiCode {
    let text = frame.error_code.clone().or_else(|| frame.payload.get("errorCode").and_then(|c| c.as_str()).map(str::to_owned)).unwrap_or_default();
    ApiCode::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> PriceStream {
        let credentials = crate::CapitalCredentials { api_key: "k".into(), identifier: "i".into(), password: "p".into() };
        let rest = Arc::new(RestClient::new(crate::RestConfig::default(), credentials).unwrap());
        PriceStream::new(rest, StreamConfig::default(), vec!["GOLD".into()], HashMap::new()).unwrap()
    }

    fn quote(t_ms: i64, bid: f64) -> String {
        format!(r#"{{"status":"OK","destination":"quote","payload":{{"epic":"GOLD","product":"CFD","bid":{bid},"bidQty":1,"ofr":{},"ofrQty":1,"timestamp":{t_ms}}}}}"#, bid + 0.1)
    }

    fn times(events: Vec<StreamEvent>) -> Vec<i64> {
        events.into_iter().filter_map(|e| if let StreamEvent::Quote { quote, .. } = e { Some(quote.time / 1_000_000) } else { None }).collect()
    }

    /// A quote stamped a day ahead used to become the instrument's watermark,
    /// so every real quote after it was dropped as stale for the session; and
    /// a timestamp near `i64::MAX` overflowed into nanoseconds.
    #[test]
    fn a_future_dated_frame_is_rejected_and_silences_nothing() {
        let mut s = stream();
        let tokens = Tokens { cst: String::from("c").into(), security_token: String::from("x").into() };
        let t0 = 1_700_000_000_000i64;
        s.server_clock = Some((t0, Instant::now()));
        let mut seen = Vec::new();
        for (t, bid) in [(t0, 10.0), (t0 + 86_400_000, 11.0), (i64::MAX / 2, 12.0), (t0 + 1_000, 10.5), (t0 + 2_000, 10.6)] {
            seen.extend(times(s.on_frame(&quote(t, bid), Instant::now(), &tokens).ok().unwrap()));
        }
        assert_eq!(seen, [t0, t0 + 1_000, t0 + 2_000], "the real quotes pass, before and after the bad ones");
        assert_eq!(s.stats.future_frames.load(Ordering::Relaxed), 2);
        assert_eq!(s.stats.stale_quotes.load(Ordering::Relaxed), 0);
        // Within the skew, an early clock is not a reason to drop anything.
        assert_eq!(times(s.on_frame(&quote(t0 + 50_000, 10.7), Instant::now(), &tokens).ok().unwrap()), [t0 + 50_000]);
    }
}
