//! The operations a simulated run is made of, and how a seed draws them.
//!
//! Every operation is a value that means the same whatever ran before it
//! (prices of orders and levels are offsets from the instrument's last price,
//! a cancel names "the n-th working order"), so a failing run can be shrunk
//! by dropping operations and still be replayed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Instruments the simulated host trades (SIM0, SIM1, ...).
pub const INSTRUMENTS: u32 = 3;
/// Strategy plugins (p0, p1, ...) sending intents.
pub const PLUGINS: u8 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// A one-minute bar of one instrument, delivered `advance_secs` after the last event.
    Bar { instrument: u32, advance_secs: u64, open: f64, high: f64, low: f64, close: f64, volume: f64 },
    /// A quote, `advance_ms` after the last event (size 0: no size shown).
    Quote { instrument: u32, advance_ms: u64, bid: f64, ask: f64, size: f64 },
    /// One callback's intents from one plugin.
    Intents { plugin: u8, intents: Vec<IntentOp> },
    /// A stop policy sets levels for a holder, as fractions from the last price.
    Levels { plugin: u8, instrument: u32, stop_loss: Option<f64>, take_profit: Option<f64> },
    /// A stop policy exits a holder's position.
    StopExit { plugin: u8, instrument: u32 },
    /// An anomaly detector's market-wide alarm.
    Alarm { critical: bool },
    /// The operator's emergency flatten.
    Flatten,
    Deleverage { fraction: f64, steps: u32, every_secs: u64 },
    /// The operator's global resume.
    Resume,
    Halt { plugin: Option<u8> },
    Adopt,
    /// The engine quarantines a plugin (its working orders cancelled).
    Quarantine { plugin: u8 },
    /// The operator unloads a plugin, cancelling its orders or leaving them.
    Unload { plugin: u8, cancel: bool },
    Load { plugin: u8 },
    /// The journal's background flush fires (what a crash keeps).
    Flush,
    /// The host dies here and restarts `downtime_secs` of market time later.
    Crash { downtime_secs: u64 },
    /// Capital.com only: the host dies at its next broker request after
    /// `requests` more, before the request reaches the broker or, with
    /// `after_handling`, once the broker has carried it out and before the
    /// reply comes back; it restarts `downtime_secs` later. (Paper: a crash now.)
    CrashAtRequest { requests: u8, after_handling: bool, downtime_secs: u64 },
    /// Capital.com only: a fault at the broker (paper: nothing).
    Fault { fault: BrokerFault },
}

/// Faults of the Capital.com world, each answered as the real API would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum BrokerFault {
    /// The next deal (`POST /positions` or `/workingorders`) is made, then answered with a gateway error (502 or 504).
    DealThenError { working: bool, status: u16 },
    /// The next deal is refused before it is made, with a documented `errorCode`.
    Refused { working: bool },
    /// The next `times` confirm reads answer 404 `error.not-found.dealReference`.
    ConfirmMissing { times: u8 },
    /// The next cancel answers 404 `error.not-found.dealId` (and cancels nothing).
    CancelMissing,
    /// The next `times` requests answer 429.
    RateLimited { times: u8 },
    /// Every session ends now (`error.invalid.session.token` on the next request).
    SessionExpired,
    /// From now on activities show this late in `GET /history/activity` (0: at once).
    ActivityLate { ms: u64 },
}

impl BrokerFault {
    /// The name the stats count it under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DealThenError { .. } => "deal-then-error",
            Self::Refused { .. } => "refused",
            Self::ConfirmMissing { .. } => "confirm-missing",
            Self::CancelMissing => "cancel-missing",
            Self::RateLimited { .. } => "rate-limited",
            Self::SessionExpired => "session-expired",
            Self::ActivityLate { .. } => "activity-late",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Market,
    Limit,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tif {
    Gtc,
    Day,
    Ioc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "kebab-case")]
pub enum IntentOp {
    Target { instrument: u32, quantity: f64 },
    /// `offset`: the limit or stop price as a fraction from the last price.
    Order { instrument: u32, buy: bool, quantity: f64, kind: Kind, offset: f64, tif: Tif },
    /// Cancels the plugin's `nth` working order (modulo how many it has).
    Cancel { nth: u32 },
    CancelAll { instrument: Option<u32> },
}

/// How often each operation is drawn, out of the weights' sum.
const MENU: &[(u32, &str)] = &[
    (340, "bar"),
    (40, "quote"),
    (250, "intents"),
    (40, "levels"),
    (15, "stop-exit"),
    (8, "alarm"),
    (15, "flatten"),
    (10, "deleverage"),
    (35, "resume"),
    (10, "halt"),
    (8, "adopt"),
    (10, "quarantine"),
    (10, "unload"),
    (25, "load"),
    (80, "flush"),
    (15, "crash"),
];

/// What the Capital.com world adds to the menu: its faults, and crashes on
/// either side of a broker request.
const CAPITAL_MENU: &[(u32, &str)] = &[(60, "fault"), (10, "crash-at-request")];

/// Draws `steps` operations from `seed` for the paper broker (see [`generate_for`]).
pub fn generate(seed: u64, steps: usize) -> Vec<Op> {
    generate_for(seed, steps, false)
}

/// Draws `steps` operations from `seed`: a market of mean-reverting prices
/// with gaps of 5 to 15% (through stops), bars with and without volume (the
/// volume cap gives partial fills), intents of every kind with sizes up to
/// and past the risk limits, operator commands, flushes and crashes with
/// downtime from minutes to days.
/// With `capital`, broker faults and crashes at a broker request are drawn
/// too (the paper menu, and so every paper seed's run, stays as it was).
pub fn generate_for(seed: u64, steps: usize, capital: bool) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut prices = vec![100.0_f64; INSTRUMENTS as usize];
    let menu: Vec<(u32, &str)> = MENU.iter().chain(if capital { CAPITAL_MENU } else { &[] }).copied().collect();
    let total: u32 = menu.iter().map(|(w, _)| w).sum();
    let mut ops = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut pick = rng.gen_range(0..total);
        let name = menu.iter().find(|(w, _)| if pick < *w { true } else { pick -= w; false }).map_or("bar", |(_, n)| *n);
        let plugin = rng.gen_range(0..PLUGINS);
        let instrument = rng.gen_range(0..INSTRUMENTS);
        let op = match name {
            "bar" => bar(&mut rng, instrument, &mut prices[instrument as usize]),
            "quote" => {
                let mid = prices[instrument as usize] * (1.0 + rng.gen_range(-0.002..0.002));
                let half = mid * rng.gen_range(0.0001..0.001);
                let size = if rng.gen_bool(0.3) { 0.0 } else { rng.gen_range(1..200) as f64 };
                Op::Quote { instrument, advance_ms: rng.gen_range(0..5_000), bid: round(mid - half), ask: round(mid + half), size }
            }
            "intents" => Op::Intents { plugin, intents: (0..rng.gen_range(1..=4)).map(|_| intent(&mut rng)).collect() },
            "levels" => {
                let stop_loss = rng.gen_bool(0.8).then(|| rng.gen_range(0.01..0.08) * if rng.gen_bool(0.5) { -1.0 } else { 1.0 });
                let take_profit = rng.gen_bool(0.5).then(|| rng.gen_range(0.01..0.08) * if rng.gen_bool(0.5) { -1.0 } else { 1.0 });
                Op::Levels { plugin, instrument, stop_loss, take_profit }
            }
            "stop-exit" => Op::StopExit { plugin, instrument },
            "alarm" => Op::Alarm { critical: rng.gen_bool(0.5) },
            "flatten" => Op::Flatten,
            "deleverage" => Op::Deleverage { fraction: [0.25, 0.5, 1.0][rng.gen_range(0..3)], steps: rng.gen_range(1..=4), every_secs: [60, 300, 3600][rng.gen_range(0..3)] },
            "resume" => Op::Resume,
            "halt" => Op::Halt { plugin: rng.gen_bool(0.5).then_some(plugin) },
            "adopt" => Op::Adopt,
            "quarantine" => Op::Quarantine { plugin },
            "unload" => Op::Unload { plugin, cancel: rng.gen_bool(0.7) },
            "load" => Op::Load { plugin },
            "flush" => Op::Flush,
            "fault" => Op::Fault { fault: fault(&mut rng) },
            "crash-at-request" => Op::CrashAtRequest { requests: rng.gen_range(0..6), after_handling: rng.gen_bool(0.5), downtime_secs: downtime(&mut rng) },
            _ => Op::Crash { downtime_secs: downtime(&mut rng) },
        };
        ops.push(op);
    }
    ops
}

/// Minutes to days: resting orders meet the market again after it.
fn downtime(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..4) {
        0 => rng.gen_range(1..600),
        1 => rng.gen_range(600..7_200),
        2 => rng.gen_range(7_200..86_400),
        _ => rng.gen_range(86_400..4 * 86_400),
    }
}

fn fault(rng: &mut StdRng) -> BrokerFault {
    match rng.gen_range(0..9) {
        0 | 1 => BrokerFault::DealThenError { working: rng.gen_bool(0.4), status: if rng.gen_bool(0.5) { 502 } else { 504 } },
        2 => BrokerFault::Refused { working: rng.gen_bool(0.4) },
        3 => BrokerFault::ConfirmMissing { times: rng.gen_range(1..12) },
        4 => BrokerFault::CancelMissing,
        5 => BrokerFault::RateLimited { times: rng.gen_range(1..4) },
        6 => BrokerFault::SessionExpired,
        _ => BrokerFault::ActivityLate { ms: if rng.gen_bool(0.4) { 0 } else { rng.gen_range(1_000..90_000) } },
    }
}

fn round(p: f64) -> f64 {
    (p * 100.0).round() / 100.0
}

fn bar(rng: &mut StdRng, instrument: u32, price: &mut f64) -> Op {
    // Reverts toward 100 so that a long run stays a market.
    let drift = 0.02 * (100.0 / *price).ln();
    let open = if rng.gen_bool(0.04) {
        // A gap through whatever levels sit between the closes.
        *price * (1.0 + rng.gen_range(0.05..0.15) * if rng.gen_bool(0.5) { -1.0 } else { 1.0 })
    } else {
        *price * (1.0 + drift + rng.gen_range(-0.004..0.004))
    };
    let close = open * (1.0 + rng.gen_range(-0.01..0.01));
    let high = open.max(close) * (1.0 + rng.gen_range(0.0..0.006));
    let low = open.min(close) * (1.0 - rng.gen_range(0.0..0.006));
    *price = round(close);
    let volume = if rng.gen_bool(0.3) { 0.0 } else { rng.gen_range(100..3_000) as f64 };
    let advance_secs = if rng.gen_bool(0.9) { 60 } else { rng.gen_range(61..7_200) };
    Op::Bar { instrument, advance_secs, open: round(open), high: round(high), low: round(low), close: round(close), volume }
}

fn intent(rng: &mut StdRng) -> IntentOp {
    let instrument = rng.gen_range(0..INSTRUMENTS);
    match rng.gen_range(0..10) {
        0..=3 => IntentOp::Target { instrument, quantity: (rng.gen_range(-320..=320) / 10 * 10) as f64 },
        4..=7 => {
            let kind = [Kind::Market, Kind::Limit, Kind::Stop][rng.gen_range(0..3)];
            let tif = [Tif::Gtc, Tif::Day, Tif::Ioc][rng.gen_range(0..3)];
            // Up to past the order-quantity cap (100) and the price band (10%).
            let quantity = rng.gen_range(1..=160) as f64;
            IntentOp::Order { instrument, buy: rng.gen_bool(0.5), quantity, kind, offset: rng.gen_range(-0.12..0.12), tif }
        }
        8 => IntentOp::Cancel { nth: rng.gen_range(0..8) },
        _ => IntentOp::CancelAll { instrument: rng.gen_bool(0.5).then_some(instrument) },
    }
}
