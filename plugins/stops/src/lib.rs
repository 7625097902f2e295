//! Stop policy: one set of exit rules for open positions, each switchable (a
//! value of 0 turns a rule off) and combinable. `README.md` beside this crate
//! works through each rule on a few bars.
//!
//! - trailing stops: ATR from the best close (`atr_trail`), chandelier from
//!   the highest high of the last `chandelier_period` bars (`chandelier`),
//!   percentage from the peak since entry (`trail_pct`);
//! - time stops: after `max_bars` bars or `max_secs` of market time in the
//!   position, and before a session's close (`session_close_utc`);
//! - profit protection: the stop moves to the entry price once the trade is
//!   up `breakeven_atr` ATRs or `breakeven_r` times its initial risk, then
//!   locks in `lock_fraction` of the open profit as it grows;
//! - take-profit at `take_profit_atr` ATRs or `take_profit_pct` percent.
//!
//! The protective stop is the tightest of the previous stop and every
//! enabled rule's level, so within a trade it only ever tightens. Levels go to
//! the broker, which triggers them inside later bars; time stops, and a stop
//! that a bar closed through, exit at market. The ATR (Wilder's) is warmed up
//! from the host's bar history at entry, so the stop is in place from the
//! first bar.

use std::collections::VecDeque;

use stratbox_sdk::Params;
use stratbox_sdk::prelude::*;

const NANOS_PER_SEC: i64 = 1_000_000_000;
const DAY_SECS: i64 = 86_400;

/// The rules as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    pub atr_period: usize,
    pub atr_trail: f64,
    pub chandelier: f64,
    pub chandelier_period: usize,
    pub trail_pct: f64,
    pub max_bars: u32,
    pub max_secs: i64,
    /// (close, buffer), minutes after UTC midnight and minutes.
    pub session_close: Option<(i64, i64)>,
    pub breakeven_atr: f64,
    pub breakeven_r: f64,
    pub lock_fraction: f64,
    pub take_profit_atr: f64,
    pub take_profit_pct: f64,
}

impl Rules {
    fn from_params(p: &Params) -> Result<Self, String> {
        let session_close = match p.text("session_close_utc")?.trim() {
            "" => None,
            hhmm => Some((minutes_of(hhmm)?, p.int("close_buffer_mins")?)),
        };
        let r = Rules {
            atr_period: p.int("atr_period")? as usize,
            atr_trail: p.number("atr_trail")?,
            chandelier: p.number("chandelier")?,
            chandelier_period: p.int("chandelier_period")? as usize,
            trail_pct: p.number("trail_pct")?,
            max_bars: p.int("max_bars")? as u32,
            max_secs: p.int("max_secs")?,
            session_close,
            breakeven_atr: p.number("breakeven_atr")?,
            breakeven_r: p.number("breakeven_r")?,
            lock_fraction: p.number("lock_fraction")?,
            take_profit_atr: p.number("take_profit_atr")?,
            take_profit_pct: p.number("take_profit_pct")?,
        };
        let trailing = r.atr_trail > 0.0 || r.chandelier > 0.0 || r.trail_pct > 0.0;
        if r.breakeven_r > 0.0 && !trailing {
            return Err("`breakeven_r` needs a trailing rule (atr_trail, chandelier or trail_pct): its first stop is the trade's initial risk".into());
        }
        if r.lock_fraction > 0.0 && r.breakeven_atr <= 0.0 && r.breakeven_r <= 0.0 {
            return Err("`lock_fraction` needs `breakeven_atr` or `breakeven_r`: the lock starts at break-even".into());
        }
        let any = trailing
            || r.max_bars > 0
            || r.max_secs > 0
            || r.session_close.is_some()
            || r.breakeven_atr > 0.0
            || r.take_profit_atr > 0.0
            || r.take_profit_pct > 0.0;
        if !any {
            return Err("every rule is off: set at least one of atr_trail, chandelier, trail_pct, max_bars, max_secs, session_close_utc, breakeven_atr, take_profit_atr, take_profit_pct".into());
        }
        Ok(r)
    }
}

/// `"HH:MM"` as minutes after midnight.
fn minutes_of(hhmm: &str) -> Result<i64, String> {
    let bad = || format!("`session_close_utc` is `{hhmm}`: expected HH:MM (UTC), e.g. 20:00");
    let (h, m) = hhmm.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// What the rules decided on one bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Levels changed: send them.
    Levels { stop: Option<f64>, take_profit: Option<f64> },
    /// Close the position at market.
    Exit,
    Nothing,
}

/// One trade (an entry until the position is flat or flips) and what the
/// rules know about it.
#[derive(Debug, Clone)]
pub struct Trade {
    /// +1 long, -1 short.
    direction: f64,
    entry: f64,
    /// Start of the entry bar (the bar whose open filled the entry).
    opened: Timestamp,
    /// Start of the last bar seen: a later bar that does not follow it means
    /// the position was flat in between, so this is another trade.
    last_start: Timestamp,
    bars: u32,
    /// `None` after a hot swap: warmed up again from history on the next bar.
    atr: Option<WilderAtr>,
    entry_atr: Option<f64>,
    best_close: f64,
    /// Highest high (long) or lowest low (short) since entry.
    peak: f64,
    /// The same extreme for each of the last `chandelier_period` bars.
    recent: VecDeque<f64>,
    stop: Option<f64>,
    initial_risk: Option<f64>,
    protecting: bool,
    take_profit: Option<f64>,
    sent: Option<(Option<f64>, Option<f64>)>,
}

impl Trade {
    /// A trade first seen on `bar`, with `warmup` (older bars, oldest first) for the ATR.
    pub fn open(rules: &Rules, bar: &Bar, position: &Position, warmup: &[Bar]) -> Self {
        let mut t = Trade {
            direction: position.quantity.signum(),
            entry: position.average_price,
            opened: bar.start,
            last_start: bar.start,
            bars: 0,
            atr: None,
            entry_atr: None,
            best_close: bar.close,
            peak: if position.quantity > 0.0 { bar.high } else { bar.low },
            recent: VecDeque::with_capacity(rules.chandelier_period),
            stop: None,
            initial_risk: None,
            protecting: false,
            take_profit: None,
            sent: None,
        };
        t.warm_up(rules, warmup);
        t
    }

    fn warm_up(&mut self, rules: &Rules, warmup: &[Bar]) {
        let mut atr = WilderAtr::new(rules.atr_period);
        for b in warmup {
            atr.update(b.high, b.low, b.close);
        }
        self.atr = Some(atr);
    }

    fn is_long(&self) -> bool {
        self.direction > 0.0
    }

    /// The tighter of two stop levels (the higher for a long).
    fn tighter(&self, a: f64, b: f64) -> f64 {
        if self.is_long() { a.max(b) } else { a.min(b) }
    }

    /// Applies the rules to the trade's next bar.
    pub fn on_bar(&mut self, rules: &Rules, bar: &Bar) -> Decision {
        let d = self.direction;
        self.bars += 1;
        self.last_start = bar.start;
        let atr = self.atr.as_mut().and_then(|a| a.update(bar.high, bar.low, bar.close));
        if self.entry_atr.is_none() {
            self.entry_atr = atr;
        }
        let favourable = if self.is_long() { bar.high } else { bar.low };
        if self.bars > 1 {
            self.best_close = self.tighter(self.best_close, bar.close);
            self.peak = self.tighter(self.peak, favourable);
        }
        if self.recent.len() == rules.chandelier_period {
            self.recent.pop_front();
        }
        self.recent.push_back(favourable);

        // Time stops.
        let end = bar.start + i64::from(bar.period_secs) * NANOS_PER_SEC;
        if rules.max_bars > 0 && self.bars >= rules.max_bars {
            return Decision::Exit;
        }
        if rules.max_secs > 0 && end - self.opened >= rules.max_secs * NANOS_PER_SEC {
            return Decision::Exit;
        }
        if let Some((close, buffer)) = rules.session_close {
            let minute = end.div_euclid(NANOS_PER_SEC).rem_euclid(DAY_SECS) / 60;
            if minute <= close && minute >= close - buffer {
                return Decision::Exit;
            }
        }

        // Trailing levels, then profit protection; the stop never loosens.
        let mut levels: Vec<f64> = Vec::with_capacity(4);
        if let Some(atr) = atr {
            if rules.atr_trail > 0.0 {
                levels.push(self.best_close - d * rules.atr_trail * atr);
            }
            if rules.chandelier > 0.0 {
                let extreme = self.recent.iter().copied().reduce(|a, b| self.tighter(a, b)).expect("holds this bar");
                levels.push(extreme - d * rules.chandelier * atr);
            }
        }
        if rules.trail_pct > 0.0 {
            levels.push(self.peak * (1.0 - d * rules.trail_pct / 100.0));
        }
        let gain = d * (self.best_close - self.entry);
        if !self.protecting {
            let by_atr = rules.breakeven_atr > 0.0 && self.entry_atr.is_some_and(|a| gain >= rules.breakeven_atr * a);
            let by_risk = rules.breakeven_r > 0.0 && self.initial_risk.is_some_and(|r| gain >= rules.breakeven_r * r);
            self.protecting = by_atr || by_risk;
        }
        if self.protecting {
            levels.push(self.entry + d * rules.lock_fraction * gain.max(0.0));
        }
        // A level at or below zero (a long's ATR stop in a collapse to pennies)
        // could never trigger: no level.
        let stop = levels.into_iter().filter(|l| *l > 0.0).chain(self.stop).reduce(|a, b| self.tighter(a, b));
        if self.initial_risk.is_none()
            && let Some(s) = stop
        {
            self.initial_risk = Some(d * (self.entry - s)).filter(|r| *r > 0.0);
        }
        self.stop = stop;

        // The take-profit is fixed at entry, the nearer of the two rules.
        if self.take_profit.is_none() {
            let by_atr = self.entry_atr.filter(|_| rules.take_profit_atr > 0.0).map(|a| self.entry + d * rules.take_profit_atr * a);
            let by_pct = (rules.take_profit_pct > 0.0).then(|| self.entry * (1.0 + d * rules.take_profit_pct / 100.0));
            self.take_profit = by_atr.into_iter().chain(by_pct).filter(|l| *l > 0.0).reduce(|a, b| if d * (a - b) <= 0.0 { a } else { b });
        }

        if let Some(s) = self.stop
            && d * (bar.close - s) <= 0.0
        {
            return Decision::Exit;
        }
        let now = (self.stop, self.take_profit);
        if self.sent == Some(now) || now == (None, None) {
            return Decision::Nothing;
        }
        self.sent = Some(now);
        Decision::Levels { stop: now.0, take_profit: now.1 }
    }
}

pub struct Stops {
    rules: Rules,
    /// Indexed by instrument id: one trade per instrument. To protect several
    /// plugins that may hold the same instrument, load one instance per
    /// plugin (`protects`).
    trades: PerInstrument<Trade>,
}

impl Plugin for Stops {
    fn describe() -> PluginInfo {
        PluginInfo::new("stops", env!("CARGO_PKG_VERSION"))
            .description("Trailing (ATR, chandelier, percentage), time and profit-protecting stops with take-profit; every level only tightens")
            .param_int("atr_period", "ATR length (Wilder), in bars", 14, 1, 1_000)
            .param_number("atr_trail", "ATR trailing stop: ATRs below the best close (long); 0 off", 3.0, 0.0, 100.0)
            .param_number("chandelier", "chandelier exit: ATRs below the highest high of the last `chandelier_period` bars; 0 off", 0.0, 0.0, 100.0)
            .param_int("chandelier_period", "bars the chandelier's highest high looks back (within the trade)", 22, 1, 1_000)
            .param_number("trail_pct", "percentage trailing stop below the peak since entry; 0 off", 0.0, 0.0, 99.0)
            .param_int("max_bars", "time stop: exit after this many bars in the position; 0 off", 0, 0, 1_000_000)
            .param_int("max_secs", "time stop: exit after this many market-time seconds in the position; 0 off", 0, 0, 100 * 365 * DAY_SECS)
            .param_text("session_close_utc", "exit before this session close, HH:MM in UTC; empty for none", "")
            .param_int("close_buffer_mins", "exit on the bar that ends within this many minutes before the close", 0, 0, 1_440)
            .param_number("breakeven_atr", "move the stop to the entry once the trade is up this many ATRs (at entry); 0 off", 0.0, 0.0, 100.0)
            .param_number("breakeven_r", "move the stop to the entry once the trade is up this many times its initial risk; 0 off", 0.0, 0.0, 100.0)
            .param_number("lock_fraction", "after break-even, the fraction of the open profit the stop locks in", 0.0, 0.0, 1.0)
            .param_number("take_profit_atr", "take-profit this many ATRs (at entry) beyond the entry; 0 off", 0.0, 0.0, 100.0)
            .param_number("take_profit_pct", "take-profit this many percent beyond the entry; 0 off", 0.0, 0.0, 1_000.0)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        Ok(Self { rules: Rules::from_params(&init.params)?, trades: PerInstrument::default() })
    }

    fn export_state(&self) -> Vec<u8> {
        let mut w = Vec::new();
        for (id, t) in self.trades.iter() {
            state::write(&mut w, id, t);
        }
        w
    }

    fn import_state(&mut self, _ctx: &mut Ctx<'_>, bytes: &[u8]) -> Result<(), String> {
        for (id, trade) in state::read(bytes)? {
            self.trades.set(id, trade);
        }
        Ok(())
    }
}

impl StopPolicy for Stops {
    fn on_position_bar(&mut self, ctx: &mut Ctx<'_>, bar: &Bar, position: &Position, out: &mut Vec<StopDecision>) {
        // The host's history ends with this bar; the one before it tells
        // whether the trade we hold was still open on the previous bar.
        let before = ctx.history(bar.instrument, bar.period_secs, 2).into_iter().find(|b| b.start < bar.start);
        let same_trade = self.trades.get(bar.instrument).is_some_and(|t| {
            t.direction == position.quantity.signum() && t.entry == position.average_price && before.is_none_or(|prev| prev.start == t.last_start)
        });
        let warm = !same_trade || self.trades.get(bar.instrument).is_some_and(|t| t.atr.is_none());
        let older: Vec<Bar> = if warm {
            ctx.history(bar.instrument, bar.period_secs, self.rules.atr_period as u32 + 1).into_iter().filter(|b| b.start < bar.start).collect()
        } else {
            Vec::new()
        };
        if !same_trade {
            self.trades.set(bar.instrument, Trade::open(&self.rules, bar, position, &older));
        }
        let trade = self.trades.get_mut(bar.instrument).expect("set above");
        if trade.atr.is_none() {
            trade.warm_up(&self.rules, &older);
        }
        match trade.on_bar(&self.rules, bar) {
            Decision::Exit => out.push(StopDecision::Exit(bar.instrument)),
            Decision::Levels { stop, take_profit } => {
                out.push(StopDecision::SetLevels(StopLevels { instrument: bar.instrument, stop_loss: stop, take_profit }))
            }
            Decision::Nothing => {}
        }
    }
}

/// The hand-over format: per trade, fixed-width little-endian fields (no
/// serde in the sandbox). The ATR is not carried: the successor warms it up
/// again from the host's history, which holds the same bars.
mod state {
    use super::Trade;
    use std::collections::VecDeque;

    const VERSION: u8 = 1;

    fn opt(x: Option<f64>) -> f64 {
        x.unwrap_or(f64::NAN)
    }

    fn some(x: f64) -> Option<f64> {
        (!x.is_nan()).then_some(x)
    }

    pub fn write(w: &mut Vec<u8>, id: u32, t: &Trade) {
        w.push(VERSION);
        w.extend(id.to_le_bytes());
        for x in [t.direction, t.entry, opt(t.entry_atr), t.best_close, t.peak, opt(t.stop), opt(t.initial_risk), opt(t.take_profit)] {
            w.extend(x.to_le_bytes());
        }
        w.extend(t.opened.to_le_bytes());
        w.extend(t.last_start.to_le_bytes());
        w.extend(t.bars.to_le_bytes());
        w.push(u8::from(t.protecting));
        w.extend((t.recent.len() as u32).to_le_bytes());
        for x in &t.recent {
            w.extend(x.to_le_bytes());
        }
    }

    pub fn read(bytes: &[u8]) -> Result<Vec<(u32, Trade)>, String> {
        let mut r = stratbox_sdk::StateReader::new(bytes);
        let mut out = Vec::new();
        while !r.is_empty() {
            let [v] = r.take::<1>()?;
            if v != VERSION {
                return Err(format!("stops state version {v}: this build reads version {VERSION}"));
            }
            let id = r.u32()?;
            let [direction, entry, entry_atr, best_close, peak, stop, initial_risk, take_profit] = [r.f64()?, r.f64()?, r.f64()?, r.f64()?, r.f64()?, r.f64()?, r.f64()?, r.f64()?];
            let (opened, last_start, bars) = (r.i64()?, r.i64()?, r.u32()?);
            let [protecting] = r.take::<1>()?;
            let n = r.u32()? as usize;
            if n > 1_000 {
                return Err(format!("stops state holds {n} chandelier bars: at most 1000"));
            }
            let recent = (0..n).map(|_| r.f64()).collect::<Result<VecDeque<f64>, _>>()?;
            let t = Trade {
                direction,
                entry,
                opened,
                last_start,
                bars,
                atr: None,
                entry_atr: some(entry_atr),
                best_close,
                peak,
                recent,
                stop: some(stop),
                initial_risk: some(initial_risk),
                protecting: protecting != 0,
                take_profit: some(take_profit),
                sent: None,
            };
            out.push((id, t));
        }
        Ok(out)
    }
}

stratbox_sdk::export_plugin!(Stops, roles: [stop_policy]);

#[cfg(test)]
mod tests;
