//! Alert webhooks against a real HTTP server on 127.0.0.1: delivered as
//! JSON, de-duplicated, rate-limited, and never blocking the caller even
//! when the webhook hangs.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use stratbox_trading::{Alert, AlertConfig, AlertSink};

#[derive(Clone)]
struct Received {
    alerts: Arc<Mutex<Vec<serde_json::Value>>>,
    /// While set, the handler hangs (a stuck webhook).
    hang: Arc<tokio::sync::Semaphore>,
}

async fn receive(State(r): State<Received>, Json(body): Json<serde_json::Value>) -> &'static str {
    let _permit = r.hang.acquire().await;
    r.alerts.lock().unwrap().push(body);
    "ok"
}

fn alert(n: usize, message: &str) -> Alert {
    Alert { time: n as i64, scope: "global".into(), kind: "halted".into(), message: message.into(), state: None, cause: None }
}

/// Waits (bounded) until `f` holds.
fn wait(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn alerts_reach_webhooks_once_within_the_rate_and_never_block() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let received = Received { alerts: Arc::default(), hang: Arc::new(tokio::sync::Semaphore::new(1)) };
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(received.clone());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = AlertConfig { webhooks: vec![url.clone()], dedupe_secs: 60, per_minute: 5, queue: 50, ..AlertConfig::default() };
    let sink = AlertSink::new(config);
    // The same alert three times, then 9 different ones: 1 + 4 sent (5 a minute), 1 + 4 held back.
    for _ in 0..3 {
        sink.raise(alert(0, "drawdown 10.2%"));
    }
    for n in 1..10 {
        sink.raise(alert(n, &format!("circuit breaker {n}")));
    }
    wait("5 deliveries and 7 decisions", || sink.stats.sent.load(Ordering::Relaxed) == 5 && sink.stats.duplicates.load(Ordering::Relaxed) == 2 && sink.stats.rate_limited.load(Ordering::Relaxed) == 5);
    let got = received.alerts.lock().unwrap().clone();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0]["message"], "drawdown 10.2%");
    assert_eq!((got[0]["scope"].as_str(), got[0]["kind"].as_str()), (Some("global"), Some("halted")));

    // A hung webhook: raising still returns at once; the queue fills and further alerts are dropped, counted.
    let hold = rt.block_on(received.hang.clone().acquire_owned()).unwrap();
    let sink = AlertSink::new(AlertConfig { webhooks: vec![url.clone()], per_minute: 1_000, queue: 3, timeout_ms: 60_000, ..AlertConfig::default() });
    for n in 0..50 {
        sink.raise(alert(n, &format!("alert {n}")));
    }
    assert_eq!(sink.stats.raised.load(Ordering::Relaxed), 50);
    wait("drops counted", || sink.stats.dropped.load(Ordering::Relaxed) >= 40);
    drop(hold);
    drop(sink); // sends what was queued, then ends

    // Shutting down while the webhook never answers: the sink lets go after
    // `drain_ms` instead of waiting queue x timeout (here 20 x 60 s), and what
    // it did not send is dropped.
    let hold = rt.block_on(received.hang.clone().acquire_owned()).unwrap();
    let before = received.alerts.lock().unwrap().len();
    let sink = AlertSink::new(AlertConfig { webhooks: vec![url], per_minute: 1_000, queue: 20, timeout_ms: 60_000, drain_ms: 200, ..AlertConfig::default() });
    for n in 0..20 {
        sink.raise(alert(n, &format!("late alert {n}")));
    }
    let stats = sink.stats.clone();
    let dropping = std::thread::spawn(move || drop(sink));
    wait("the sink to let go with a hung webhook", || dropping.is_finished());
    drop(hold);
    let sent = || received.alerts.lock().unwrap().len() - before;
    wait("every late alert sent or dropped", || stats.dropped.load(Ordering::Relaxed) as usize + sent() == 20);
    assert!(sent() <= 1, "only a send in flight at the deadline may still go out: {} sent", sent());
}
