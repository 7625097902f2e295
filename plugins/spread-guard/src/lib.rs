//! Anomaly detector on quotes: liquidity. Each instrument's spread, in basis
//! points of the mid, against the median of its last `window` spreads: at
//! `elevated` times the median an elevated alarm, at `severe` times a severe
//! one. A crossed or locked book (bid >= ask), or a side whose size drops to
//! zero after sizes were shown, is severe at once. Market-wide: when at least
//! `breadth` of the instruments quoted in the last `breadth_secs` of market
//! time are at `severe` or worse, critical. Bars carry no spread, so this
//! detector watches quotes only (live and quote replays); `detect eval`, which
//! replays bars, cannot score it.

use stratbox_sdk::prelude::*;

struct Book {
    spreads: RollingMedian,
    sized: bool,
    /// Market time of this instrument's last severe state, if any.
    severe_at: Option<i64>,
    seen_at: i64,
}

pub struct SpreadGuard {
    window: usize,
    elevated: f64,
    severe: f64,
    breadth: f64,
    breadth_nanos: i64,
    books: PerInstrument<Book>,
}

impl Plugin for SpreadGuard {
    fn describe() -> PluginInfo {
        PluginInfo::new("spread-guard", env!("CARGO_PKG_VERSION"))
            .description("Spreads against their recent median, crossed or empty books (quotes)")
            .param_int("window", "spreads in the rolling median", 200, 5, 100_000)
            .param_number("elevated", "spread as a multiple of the median for an elevated alarm", 4.0, 1.0, 10_000.0)
            .param_number("severe", "multiple for a severe alarm", 10.0, 1.0, 10_000.0)
            .param_number("breadth", "share of quoted instruments severe at once for a critical alarm", 0.5, 0.0, 1.0)
            .param_int("breadth_secs", "market seconds an instrument's quotes and severe state count for the breadth", 60, 1, 86_400)
    }

    fn init(_ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let p = &init.params;
        let (elevated, severe) = (p.number("elevated")?, p.number("severe")?);
        if severe < elevated {
            return Err(format!("`severe` ({severe}) must not be below `elevated` ({elevated})"));
        }
        Ok(Self { window: p.int("window")? as usize, elevated, severe, breadth: p.number("breadth")?, breadth_nanos: p.int("breadth_secs")? * 1_000_000_000, books: PerInstrument::default() })
    }
}

impl SpreadGuard {
    /// The instrument's own level and why.
    fn judge(&mut self, q: &Quote) -> Option<(AlarmLevel, String)> {
        let window = self.window;
        let book = self.books.get_or_insert_with(q.instrument, || Book { spreads: RollingMedian::new(window), sized: false, severe_at: None, seen_at: q.time });
        book.seen_at = q.time;
        if q.bid >= q.ask {
            return Some((AlarmLevel::Severe, format!("crossed book: bid {} >= ask {}", q.bid, q.ask)));
        }
        let emptied = book.sized && (q.bid_size <= 0.0 || q.ask_size <= 0.0);
        book.sized |= q.bid_size > 0.0 && q.ask_size > 0.0;
        if emptied {
            return Some((AlarmLevel::Severe, format!("a side of the book is empty (sizes {} / {})", q.bid_size, q.ask_size)));
        }
        let mid = 0.5 * (q.bid + q.ask);
        let bps = (q.ask - q.bid) / mid * 1e4;
        let median = book.spreads.median_mad().map(|(m, _)| m);
        book.spreads.update(bps);
        let ratio = bps / median.filter(|m| *m > 0.0)?;
        let level = if ratio >= self.severe { AlarmLevel::Severe } else if ratio >= self.elevated { AlarmLevel::Elevated } else { return None };
        Some((level, format!("spread {bps:.1} bp is {ratio:.1} times its median of the last {window} ({:.1} bp)", median.unwrap_or(0.0))))
    }
}

impl AnomalyDetector for SpreadGuard {
    fn observe_bars(&mut self, _ctx: &mut Ctx<'_>, _bars: &[Bar]) -> Option<Alarm> {
        None
    }

    fn observe_quote(&mut self, _ctx: &mut Ctx<'_>, q: &Quote) -> Option<Alarm> {
        let judged = self.judge(q);
        let severe_now = judged.as_ref().is_some_and(|(l, _)| *l == AlarmLevel::Severe);
        if let Some(book) = self.books.get_mut(q.instrument) {
            book.severe_at = severe_now.then_some(q.time);
        }
        let recent = |t: i64| q.time - t <= self.breadth_nanos;
        let quoted = self.books.iter().filter(|(_, b)| recent(b.seen_at)).count();
        let severe = self.books.iter().filter(|(_, b)| b.severe_at.is_some_and(recent)).count();
        if severe_now && quoted >= 2 && severe as f64 >= self.breadth * quoted as f64 {
            return Some(Alarm { level: AlarmLevel::Critical, instrument: None, reason: format!("{severe} of {quoted} quoted instruments have severe spreads or empty books") });
        }
        judged.map(|(level, reason)| Alarm { level, instrument: Some(q.instrument), reason })
    }
}

stratbox_sdk::export_plugin!(SpreadGuard, roles: [anomaly_detector]);

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{Harness, instrument};

    fn quote(instrument: u32, secs: i64, bid: f64, ask: f64, size: f64) -> Quote {
        Quote { instrument, time: secs * 1_000_000_000, bid, bid_size: size, ask, ask_size: size }
    }

    fn harness(n: u32) -> Harness<SpreadGuard> {
        let mut h = Harness::<SpreadGuard>::new((0..n).map(|i| instrument(i, "X")).collect(), &[("window", stratbox_sdk::ParamValue::Integer(10))]).unwrap();
        for s in 0..10 {
            for i in 0..n {
                assert_eq!(h.observe_quote(quote(i, s, 99.99, 100.01, 5.0)), None, "2 bp spreads");
            }
        }
        h
    }

    #[test]
    fn a_wide_spread_is_elevated_then_severe() {
        let mut h = harness(1);
        // 10 bp against a median of 2: 5 times.
        assert_eq!(h.observe_quote(quote(0, 20, 99.95, 100.05, 5.0)).unwrap().level, AlarmLevel::Elevated);
        let a = h.observe_quote(quote(0, 21, 99.8, 100.2, 5.0)).unwrap();
        assert_eq!((a.level, a.instrument), (AlarmLevel::Severe, Some(0)), "{}", a.reason);
    }

    #[test]
    fn crossed_and_emptied_books_are_severe_and_many_at_once_critical() {
        let mut h = harness(4);
        assert!(h.observe_quote(quote(0, 20, 100.02, 100.01, 5.0)).unwrap().reason.starts_with("crossed book"));
        assert!(h.observe_quote(quote(1, 20, 99.99, 100.01, 0.0)).unwrap().level == AlarmLevel::Critical, "2 of 4 severe: critical at breadth 0.5");
    }
}
