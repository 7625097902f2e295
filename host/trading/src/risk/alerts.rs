//! Alerts out of the trading path: every alert is logged, and posted as JSON
//! to the configured webhooks by a thread of its own. Handing one over never
//! blocks (a full queue drops the alert and counts it); the same alert again
//! within `dedupe_secs` is sent once; at most `per_minute` are sent a minute,
//! the rest counted as suppressed. Shutting down waits at most `drain_ms`
//! for what is queued: a hung webhook cannot hold the host's exit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Alert;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// URLs that receive each alert as a JSON POST.
    pub webhooks: Vec<String>,
    pub dedupe_secs: u64,
    pub per_minute: usize,
    pub timeout_ms: u64,
    /// Alerts waiting to be sent at most; more are dropped (and counted).
    pub queue: usize,
    /// At shutdown, how long queued alerts may still be sent; the rest are dropped.
    pub drain_ms: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self { webhooks: Vec::new(), dedupe_secs: 300, per_minute: 30, timeout_ms: 5_000, queue: 1_000, drain_ms: 5_000 }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct AlertStats {
    pub raised: AtomicU64,
    pub sent: AtomicU64,
    pub duplicates: AtomicU64,
    pub rate_limited: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

/// Where the host hands alerts.
pub struct AlertSink {
    tx: Option<SyncSender<Alert>>,
    pub stats: Arc<AlertStats>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Set at shutdown: past it the worker sends nothing more.
    closing: Arc<std::sync::OnceLock<Instant>>,
    drain: Duration,
}

impl AlertSink {
    pub fn new(config: AlertConfig) -> Self {
        let stats = Arc::new(AlertStats::default());
        let closing = Arc::new(std::sync::OnceLock::new());
        let drain = Duration::from_millis(config.drain_ms);
        if config.webhooks.is_empty() {
            return Self { tx: None, stats, worker: None, closing, drain };
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let (worker_stats, worker_closing) = (stats.clone(), closing.clone());
        let worker =
            std::thread::Builder::new().name("alerts".into()).spawn(move || deliver(config, rx, worker_stats, worker_closing)).expect("alert thread");
        Self { tx: Some(tx), stats, worker: Some(worker), closing, drain }
    }

    /// Logs the alert and queues it for the webhooks; never waits.
    pub fn raise(&self, alert: Alert) {
        self.stats.raised.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(market_time = %stratbox_market::format_time(alert.time), scope = %alert.scope, kind = %alert.kind, "risk alert: {}", alert.message);
        if let Some(tx) = &self.tx {
            match tx.try_send(alert) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Drop for AlertSink {
    fn drop(&mut self) {
        // Closing the queue ends the worker once it has sent what is queued,
        // or at the deadline; a send stuck past it is left behind, not waited for.
        let deadline = Instant::now() + self.drain;
        let _ = self.closing.set(deadline);
        self.tx.take();
        if let Some(w) = self.worker.take() {
            while !w.is_finished() {
                if Instant::now() >= deadline {
                    tracing::warn!(drain_ms = self.drain.as_millis() as u64, "alert webhooks still busy at shutdown; undelivered alerts dropped");
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = w.join();
        }
    }
}

fn deliver(config: AlertConfig, rx: Receiver<Alert>, stats: Arc<AlertStats>, closing: Arc<std::sync::OnceLock<Instant>>) {
    let http = match reqwest::blocking::Client::builder().timeout(Duration::from_millis(config.timeout_ms)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the alert sender");
            return;
        }
    };
    let mut seen: HashMap<(String, String, String), Instant> = HashMap::new();
    let mut sent_at: VecDeque<Instant> = VecDeque::new();
    let dedupe = Duration::from_secs(config.dedupe_secs);
    for alert in rx {
        let now = Instant::now();
        if closing.get().is_some_and(|d| now >= *d) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let key = (alert.scope.clone(), alert.kind.clone(), alert.message.clone());
        if seen.get(&key).is_some_and(|t| now.duration_since(*t) < dedupe) {
            stats.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        seen.retain(|_, t| now.duration_since(*t) < dedupe);
        seen.insert(key, now);
        while sent_at.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            sent_at.pop_front();
        }
        if sent_at.len() >= config.per_minute {
            stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        sent_at.push_back(now);
        for url in &config.webhooks {
            match http.post(url).json(&alert).send() {
                Ok(r) if r.status().is_success() => {
                    stats.sent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(status = %r.status(), "an alert webhook refused the alert");
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e.without_url(), "an alert webhook is unreachable");
                }
            }
        }
    }
}
