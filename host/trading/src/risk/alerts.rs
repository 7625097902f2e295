//! Alerts out of the trading path: every alert is logged, and posted as JSON
//! to the configured webhooks by a thread of its own. Handing one over never
//! blocks (a full queue drops the alert and counts it); the same alert again
//! within `dedupe_secs` is sent once; at most `per_minute` are sent a minute,
//! the rest counted as suppressed.

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
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self { webhooks: Vec::new(), dedupe_secs: 300, per_minute: 30, timeout_ms: 5_000, queue: 1_000 }
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
}

impl AlertSink {
    pub fn new(config: AlertConfig) -> Self {
        let stats = Arc::new(AlertStats::default());
        if config.webhooks.is_empty() {
            return Self { tx: None, stats, worker: None };
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let worker_stats = stats.clone();
        let worker = std::thread::Builder::new().name("alerts".into()).spawn(move || deliver(config, rx, worker_stats)).expect("alert thread");
        Self { tx: Some(tx), stats, worker: Some(worker) }
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
        // Closing the queue ends the worker once it has sent what is queued.
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn deliver(config: AlertConfig, rx: Receiver<Alert>, stats: Arc<AlertStats>) {
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
