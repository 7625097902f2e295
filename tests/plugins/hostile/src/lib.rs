//! Test fixture for the sandbox guarantees (`tests/sandbox/`). Written with the
//! SDK like any third-party plugin; its `mode` parameter picks the attack,
//! carried out on the first bar (or in `init` for the `init-*` modes).

use std::hint::black_box;

use stratbox_sdk::prelude::*;
use stratbox_sdk::{OrderIntent, OrderType, TimeInForce};

pub struct Hostile {
    mode: String,
    /// Iterations of the busy-wait mode.
    spin: u64,
    bars: u64,
    /// Start of the first cross-section seen: "first bar" means that one.
    first_start: Option<i64>,
    /// Mode `churn`: intents to send before going quiet (0: no end), and sent so far.
    orders: u64,
    churned: u64,
    /// Size of the text of the huge-* modes.
    bytes: usize,
}

fn spin_forever() -> u64 {
    let mut x = 0u64;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

/// Recursion on the wasm call stack (locals only): hits the engine's stack limit.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX { 0 } else { black_box(recurse(depth + 1)) ^ depth }
}

/// Recursion with large frames, which Rust keeps on its shadow stack in
/// linear memory: runs off the bottom of memory before the engine's limit.
fn recurse_with_frames(depth: u64) -> u64 {
    let mut frame = [0u8; 256];
    frame[0] = depth as u8;
    black_box(&mut frame);
    if black_box(depth) == u64::MAX { 0 } else { recurse_with_frames(depth + 1) + u64::from(black_box(frame[0])) }
}

fn order(instrument: InstrumentId, quantity: f64, order_type: OrderType) -> Intent {
    Intent::Order(OrderIntent { instrument, side: Side::Buy, quantity, order_type, time_in_force: TimeInForce::Gtc, tag: 0 })
}

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new("hostile", env!("CARGO_PKG_VERSION"))
            .description("misbehaves on purpose; see tests/sandbox")
            .param_text("mode", "which attack to carry out", "none")
            .param_int("spin", "iterations of the busy-wait mode", 20_000_000_000, 0, i64::MAX)
            .param_int("orders", "churn mode: intents to send before going quiet (0: no end)", 0, 0, i64::MAX)
            .param_int("bytes", "size of the text the huge-* modes hand the host", 2_000_000, 0, 64 << 20)
            // Not an attack: lets the tests watch timers and quotes arrive.
            .timer_secs(300)
    }

    fn init(ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let mode = init.params.text("mode")?.to_owned();
        match mode.as_str() {
            "init-spin" => {
                spin_forever();
            }
            "init-error" => return Err("refusing to start: no edge in this market".into()),
            "init-error-huge" => return Err("e".repeat(init.params.int("bytes")? as usize)),
            "init-panic" => panic!("init blew up"),
            _ => {}
        }
        ctx.info(&format!("hostile plugin armed: {mode}"));
        let (spin, orders, bytes) = (init.params.int("spin")? as u64, init.params.int("orders")? as u64, init.params.int("bytes")? as usize);
        Ok(Self { mode, spin, bars: 0, first_start: None, orders, churned: 0, bytes })
    }

    fn export_state(&self) -> Vec<u8> {
        self.bars.to_le_bytes().to_vec()
    }

    fn import_state(&mut self, _ctx: &mut Ctx<'_>, state: &[u8]) -> Result<(), String> {
        if self.mode == "refuse-state" {
            return Err("this build cannot read its predecessor's state".into());
        }
        self.bars = u64::from_le_bytes(state.try_into().map_err(|_| format!("state is {} bytes, expected 8", state.len()))?);
        Ok(())
    }
}

impl Strategy for Hostile {
    /// Mode `echo`: answers with the minute of the day (UTC) as a target quantity.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, now: i64, out: &mut Vec<Intent>) {
        if self.mode == "echo" {
            out.push(Intent::target(0, ((now / 60_000_000_000) % 1440) as f64));
        }
    }

    /// Mode `echo`: answers with the quote's spread as a target quantity.
    /// Mode `churn`: not an attack: a steady mix of every kind of order, one
    /// per quote (targets, a limit at the bid, a stop below it, cancels), for
    /// the broker and crash-recovery tests.
    fn on_quote(&mut self, _ctx: &mut Ctx<'_>, quote: &stratbox_sdk::Quote, out: &mut Vec<Intent>) {
        let id = quote.instrument;
        match self.mode.as_str() {
            "echo" => out.push(Intent::target(id, (quote.ask - quote.bid).round())),
            "churn" if self.orders == 0 || self.churned < self.orders => {
                self.churned += 1;
                let tick = |p: f64| (p * 100.0).round() / 100.0;
                out.push(match self.churned % 6 {
                    0 => Intent::target(id, 2.0),
                    1 => Intent::limit(id, Side::Buy, 1.0, tick(quote.bid)),
                    2 => Intent::target(id, -1.0),
                    3 => Intent::stop(id, Side::Sell, 1.0, tick(quote.bid * 0.999)),
                    4 => Intent::target(id, 0.0),
                    _ => Intent::CancelAll(Some(id)),
                });
            }
            _ => {}
        }
    }

    fn on_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>) {
        self.bars += 1;
        let id = bar.instrument;
        let first = *self.first_start.get_or_insert(bar.start) == bar.start;
        match self.mode.as_str() {
            "spin" => {
                spin_forever();
            }
            // Cheap for the guest, a large copy for the host, forever: only
            // what the host charges for the import can stop it.
            "history-hog" => loop {
                black_box(ctx.history(id, bar.period_secs, 10_000));
            },
            "busy-wait" => {
                // Finite, but (by default) far longer than any live deadline.
                let mut x = 0u64;
                for i in 0..black_box(self.spin) {
                    x = black_box(x ^ i);
                }
                black_box(x);
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xA5; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recursion" => {
                black_box(recurse(0));
            }
            "deep-frames" => {
                black_box(recurse_with_frames(0));
            }
            "panic" => {
                let v: Vec<u32> = Vec::new();
                black_box(v[black_box(3)]);
            }
            "intent-flood" if first && id == 0 => out.extend((0..1_000_000).map(|_| Intent::market(id, Side::Buy, 1.0))),
            "log-flood" => {
                let line = "x".repeat(1024);
                for _ in 0..100_000 {
                    ctx.info(&line);
                }
            }
            "nan-quantity" => out.push(Intent::market(id, Side::Buy, f64::NAN)),
            "infinite-price" => out.push(order(id, 1.0, OrderType::Limit(f64::INFINITY))),
            "negative-quantity" => out.push(Intent::market(id, Side::Buy, -5.0)),
            "absurd-quantity" => out.push(Intent::market(id, Side::Buy, 1e300)),
            "negative-price" => out.push(order(id, 1.0, OrderType::Stop(-1.0))),
            "unknown-instrument" => out.push(Intent::market(id + 1_000_000, Side::Buy, 1.0)),
            // Valid intents the risk engine must stop: a burst of small orders every bar...
            "order-spam" => out.extend((0..200).map(|k| Intent::market(id, if k % 2 == 0 { Side::Buy } else { Side::Sell }, 1.0))),
            // ...and orders past every per-order limit.
            "limit-breaker" => {
                out.push(Intent::market(id, Side::Buy, 2e6));
                out.push(Intent::market(id, Side::Buy, 5_000.0));
                out.push(order(id, 1.0, OrderType::Limit((bar.close * 3.0).round())));
            }
            // A resting order below the market (inside the risk engine's 10% band,
            // far from filling within a bar), then a panic on the next bar.
            "order-then-panic" if first && id == 0 => out.push(order(id, 1.0, OrderType::Limit((bar.close * 0.92 * 100.0).round() / 100.0))),
            "order-then-panic" if !first => panic!("second bar"),
            // Fill the private store until the host says no; report how many
            // writes succeeded as a target quantity the test can read.
            "kv-hog" if first && id == 0 => {
                let value = vec![7u8; 1000];
                let mut n = 0;
                while ctx.kv_set(&format!("key-{n:06}"), &value).is_ok() {
                    n += 1;
                }
                let err = ctx.kv_set("one-more", &value).unwrap_err();
                ctx.warn(&format!("store full after {n} writes: {err:?}"));
                out.push(Intent::target(id, n as f64));
            }
            _ => {}
        }
    }
}

impl AnomalyDetector for Hostile {
    /// Mode `huge-alarm`: an alarm whose reason is `bytes` long, on every bar.
    fn observe_bars(&mut self, _ctx: &mut Ctx<'_>, _bars: &[Bar]) -> Option<Alarm> {
        (self.mode == "huge-alarm").then(|| Alarm { level: AlarmLevel::Elevated, instrument: None, reason: "r".repeat(self.bytes) })
    }
}

stratbox_sdk::export_plugin!(Hostile, roles: [strategy, anomaly_detector]);
