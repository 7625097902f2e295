//! Moving-average crossover, per instrument: when the fast SMA crosses above
//! the slow SMA, target a long position of `quantity`; when it crosses below,
//! target flat (or short, with `allow_short`). Intents are target positions, so
//! the host's risk engine and broker work out the order sizes.

use std::collections::VecDeque;

use stratbox_sdk::StateReader;
use stratbox_sdk::prelude::*;

/// Per-instrument state: the slow window of closes (enough to rebuild both
/// SMAs on a hot swap) and the last signal.
struct Leg {
    fast: Sma,
    slow: Sma,
    closes: VecDeque<f64>,
    signal: i8,
}

pub struct SmaCross {
    fast: usize,
    slow: usize,
    quantity: f64,
    allow_short: bool,
    /// Indexed by instrument id (ids are small and dense).
    legs: Vec<Option<Leg>>,
    crossings: u64,
}

impl SmaCross {
    fn leg(&mut self, id: InstrumentId) -> &mut Leg {
        let i = id as usize;
        if self.legs.len() <= i {
            self.legs.resize_with(i + 1, || None);
        }
        let (fast, slow) = (self.fast, self.slow);
        self.legs[i].get_or_insert_with(|| Leg {
            fast: Sma::new(fast),
            slow: Sma::new(slow),
            closes: VecDeque::with_capacity(slow),
            signal: 0,
        })
    }

    /// Feeds a close; returns the new signal when it changes.
    fn update(&mut self, id: InstrumentId, close: f64) -> Option<i8> {
        let allow_short = self.allow_short;
        let slow = self.slow;
        let leg = self.leg(id);
        if leg.closes.len() == slow {
            leg.closes.pop_front();
        }
        leg.closes.push_back(close);
        let (f, s) = (leg.fast.update(close), leg.slow.update(close));
        let (Some(f), Some(s)) = (f, s) else { return None };
        let signal = if f > s { 1 } else if f < s { if allow_short { -1 } else { 0 } } else { leg.signal };
        (signal != leg.signal).then(|| {
            leg.signal = signal;
            signal
        })
    }
}

impl Plugin for SmaCross {
    fn describe() -> PluginInfo {
        PluginInfo::new("sma-cross", env!("CARGO_PKG_VERSION"))
            .description("Fast/slow simple moving-average crossover, one position per instrument")
            .param_int("fast", "fast SMA length, in bars", 10, 1, 1_000)
            .param_int("slow", "slow SMA length, in bars", 30, 2, 5_000)
            .param_number("quantity", "position size when in the market", 10.0, 0.0, 1e9)
            .param_flag("allow_short", "go short on a downward cross instead of flat", false)
            .memory_bytes(8 << 20)
            // A hot swap replays every instrument's window in one call.
            .fuel_per_callback(50_000_000)
            .max_intents_per_callback(4_096)
    }

    fn init(ctx: &mut Ctx<'_>, init: &Init) -> Result<Self, String> {
        let fast = init.params.int("fast")? as usize;
        let slow = init.params.int("slow")? as usize;
        if fast >= slow {
            return Err(format!("`fast` ({fast}) must be shorter than `slow` ({slow})"));
        }
        ctx.info(&format!("sma-cross {fast}/{slow} on {} instruments", init.instruments.len()));
        Ok(Self {
            fast,
            slow,
            quantity: init.params.number("quantity")?,
            allow_short: init.params.flag("allow_short")?,
            legs: Vec::with_capacity(init.instruments.len()),
            crossings: 0,
        })
    }

    /// Layout: u64 crossings, then per leg: u32 id, i8 signal, u32 n, n x f64 closes (little-endian).
    fn export_state(&self) -> Vec<u8> {
        let mut out = self.crossings.to_le_bytes().to_vec();
        for (id, leg) in self.legs.iter().enumerate() {
            let Some(leg) = leg else { continue };
            out.extend_from_slice(&(id as u32).to_le_bytes());
            out.push(leg.signal as u8);
            out.extend_from_slice(&(leg.closes.len() as u32).to_le_bytes());
            leg.closes.iter().for_each(|c| out.extend_from_slice(&c.to_le_bytes()));
        }
        out
    }

    fn import_state(&mut self, ctx: &mut Ctx<'_>, state: &[u8]) -> Result<(), String> {
        let mut r = StateReader::new(state);
        self.crossings = r.u64()?;
        let mut legs = 0;
        while !r.is_empty() {
            let id = r.u32()?;
            let signal = r.u8()? as i8;
            let n = r.u32()? as usize;
            for _ in 0..n {
                let close = r.f64()?;
                self.update(id, close);
            }
            self.leg(id).signal = signal;
            legs += 1;
        }
        ctx.info(&format!("took over {legs} instruments and {} crossings", self.crossings));
        Ok(())
    }
}

impl Strategy for SmaCross {
    fn on_bar(&mut self, _ctx: &mut Ctx<'_>, bar: &Bar, out: &mut Vec<Intent>) {
        if let Some(signal) = self.update(bar.instrument, bar.close) {
            self.crossings += 1;
            out.push(Intent::target(bar.instrument, f64::from(signal) * self.quantity));
        }
    }
}

stratbox_sdk::export_plugin!(SmaCross, roles: [strategy]);


#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::{bar, instrument, Harness};
    use stratbox_sdk::ParamValue;

    const DAY: u32 = 86_400;

    fn harness() -> Harness<SmaCross> {
        Harness::new(
            vec![instrument(0, "AAA"), instrument(1, "BBB")],
            &[("fast", ParamValue::Integer(2)), ("slow", ParamValue::Integer(4))],
        )
        .unwrap()
    }

    /// Closes that fall, then rise, then fall: two crossings after warm-up.
    const PATH: [f64; 12] = [10.0, 9.0, 8.0, 7.0, 6.0, 8.0, 10.0, 12.0, 11.0, 9.0, 7.0, 5.0];

    fn run(h: &mut Harness<SmaCross>, closes: &[f64], from_day: i64) -> Vec<(i64, Intent)> {
        closes
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| {
                let day = from_day + i as i64;
                h.bar(bar(0, day * i64::from(DAY), DAY, c)).into_iter().map(move |x| (day, x))
            })
            .collect()
    }

    #[test]
    fn goes_long_on_the_up_cross_and_flat_on_the_down_cross() {
        let mut h = harness();
        let intents = run(&mut h, &PATH, 0);
        assert_eq!(intents, vec![(6, Intent::target(0, 10.0)), (9, Intent::target(0, 0.0))]);
    }

    #[test]
    fn goes_short_when_allowed() {
        let mut h = Harness::<SmaCross>::new(
            vec![instrument(0, "AAA")],
            &[("fast", ParamValue::Integer(2)), ("slow", ParamValue::Integer(4)), ("allow_short", ParamValue::Flag(true))],
        )
        .unwrap();
        let targets: Vec<_> = run(&mut h, &PATH, 0).into_iter().map(|(_, i)| i).collect();
        assert_eq!(targets, vec![Intent::target(0, -10.0), Intent::target(0, 10.0), Intent::target(0, -10.0)]);
    }

    #[test]
    fn instruments_are_independent() {
        let mut h = harness();
        for (i, &c) in PATH.iter().enumerate() {
            let day = i as i64 * i64::from(DAY);
            let out = h.bars(&[bar(0, day, DAY, c), bar(1, day, DAY, 100.0)]);
            assert!(out.iter().all(|x| matches!(x, Intent::Target(t) if t.instrument == 0)));
        }
    }

    #[test]
    fn rejects_fast_not_shorter_than_slow_and_out_of_range_params() {
        let err = Harness::<SmaCross>::new(vec![], &[("fast", ParamValue::Integer(30))]).err().unwrap();
        assert!(err.contains("must be shorter"), "{err}");
        let err = Harness::<SmaCross>::new(vec![], &[("slow", ParamValue::Integer(1))]).err().unwrap();
        assert!(err.contains("outside"), "{err}");
    }

    #[test]
    fn a_swapped_successor_continues_exactly_where_the_predecessor_stopped() {
        let mut whole = harness();
        let expected = run(&mut whole, &PATH, 0);

        let mut first = harness();
        let mut got = run(&mut first, &PATH[..5], 0);
        let mut second = first
            .swap::<SmaCross>(&[("fast", ParamValue::Integer(2)), ("slow", ParamValue::Integer(4))])
            .unwrap();
        got.extend(run(&mut second, &PATH[5..], 5));
        assert_eq!(got, expected);
    }
}
