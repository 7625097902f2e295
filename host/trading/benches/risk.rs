//! The order-path figure of the execution issue: an intent planned by the
//! paper broker, checked by the risk engine (every rule, with a book of 50
//! positions and the throttles' windows filling), and placed, measured per
//! order; beside it the same path without the risk check, the baseline.
//! Goal: the risk check plus order path p99 <= 20 us.
//!
//! `cargo bench -p stratbox-trading --bench risk`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratbox_trading::{PaperBroker, PaperConfig, Plan};
use stratbox_market::NANOS_PER_SEC;
use stratbox_trading::{BookTotals, Exposure, OrderCheck, RiskConfig, RiskEngine};
use stratbox_contract::{Intent, OrderIntent, OrderType, Side, TimeInForce};
use stratbox_trading::SharedWorld;

const ORDERS: usize = 200_000;
const POSITIONS: u32 = 50;

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Times `ORDERS` orders through `path`, one `Instant` pair each.
fn run(mut path: impl FnMut(usize) -> bool) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(ORDERS);
    let mut accepted = 0;
    for k in 0..ORDERS {
        let start = Instant::now();
        accepted += usize::from(black_box(path(k)));
        times.push(start.elapsed());
    }
    (times, accepted)
}

fn main() {
    let world = Arc::new(SharedWorld::new(0));
    let plugin: Arc<str> = Arc::from("strategy");
    // A book of 50 positions.
    for i in 0..POSITIONS {
        world.ledger_mut().apply_fill(&plugin, i, 10.0, 100.0 + f64::from(i), 0.0);
    }
    let positions: Vec<Exposure> = world
        .ledger()
        .positions(&plugin)
        .iter()
        .map(|p| Exposure { instrument: p.instrument, quantity: p.quantity, mark: p.average_price, buying: 0.0, selling: 0.0 })
        .collect();
    // The book's totals once; each check takes out the instrument it is about (as the order path does).
    let totals = BookTotals::of(&positions);
    let symbols: Vec<String> = (0..POSITIONS).map(|i| format!("S{i:03}")).collect();
    let config = RiskConfig { duplicate_window_ms: 100, orders_per_sec_per_plugin: 1_000_000, orders_per_sec: 1_000_000, ..RiskConfig::default() };
    let t0 = 1_704_103_200 * NANOS_PER_SEC;
    let intent = |k: usize| {
        let i = (k as u32) % POSITIONS;
        let side = if k.is_multiple_of(2) { Side::Buy } else { Side::Sell };
        let order_type = if k.is_multiple_of(3) { OrderType::Limit(100.0 + f64::from(i)) } else { OrderType::Market };
        Intent::Order(OrderIntent { instrument: i, side, quantity: 1.0 + (k % 7) as f64, order_type, time_in_force: TimeInForce::Day, tag: 0 })
    };

    println!("{ORDERS} orders, a book of {POSITIONS} positions; one timing per order (Instant overhead included)");
    println!("| {:<52} | {:>9} | {:>9} | {:>9} | {:>10} |", "path", "p50", "p99", "max", "accepted");
    let mut rows = Vec::new();
    for with_risk in [false, true] {
        let mut broker = PaperBroker::new(PaperConfig::default(), world.clone());
        let mut risk = RiskEngine::new(config.clone());
        let (mut times, accepted) = run(|k| {
            let now = t0 + (k as i64) * 1_000_000; // 1,000 orders per market second
            let plan = broker.plan(&plugin, &intent(k));
            if with_risk && let Plan::Place(o) = &plan {
                let others = totals.minus(positions[o.instrument as usize].contribution());
                let check = OrderCheck {
                    plugin: &plugin,
                    instrument: o.instrument,
                    symbol: &symbols[o.instrument as usize],
                    side: o.side,
                    quantity: o.quantity,
                    order_type: o.order_type,
                    position: world.ledger().quantity(&plugin, o.instrument),
                    working: (0.0, 0.0),
                    last_price: Some(100.0 + f64::from(o.instrument)),
                    market_open: Some(true),
                    others,
                    open_orders: 0,
                    exit: false,
                    in_doubt: None,
                    now,
                };
                if risk.check(&check).is_err() {
                    return false;
                }
            }
            let placed = !matches!(broker.execute(&plugin, plan, now), stratbox_trading::Submission::Nothing);
            // Keep the working set bounded, as fills would.
            if k % 1_000 == 999 {
                broker.cancel_all(&plugin);
            }
            placed
        });
        let label = if with_risk { "plan + risk check (all rules) + place" } else { "plan + place (baseline, no risk check)" };
        let (p50, p99, max) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99), percentile(&mut times, 1.0));
        println!("| {label:<52} | {:>9.2?} | {:>9.2?} | {:>9.2?} | {:>10} |", p50, p99, max, accepted);
        rows.push(p99);
    }
    println!("risk adds {:.2?} at p99; goal: p99 <= 20 us ({:.3}x the goal)", rows[1].saturating_sub(rows[0]), rows[1].as_secs_f64() / 20e-6);
}
