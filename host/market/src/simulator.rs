//! The built-in simulated market. Per bar, each instrument's log price moves
//! by a market factor and its own shock (correlation `correlation`), with:
//! - stochastic volatility: log-volatility follows an AR(1) with a
//!   market-wide and an own component (volatility clusters);
//! - intraday seasonality: volatility peaks around the US open and close
//!   (14:30 and 21:00 UTC);
//! - regimes: a Markov switch between calm and crash (volatility times
//!   `crash_vol_multiplier`, a negative market drift, correlations near one);
//! - occasional market-wide jumps;
//! - OHLCV bars from intrabar sub-steps;
//! - a bid/ask spread per instrument that widens with its current
//!   volatility (`spread_bps` in calm conditions, up to 10 times that), and
//!   optionally a quote per instrument after each cross-section.
//!
//! Seeded: the same config gives the same bars.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{Bar, Feed, Instrument, MarketEvent, NANOS_PER_SEC, Quote, Timestamp, on_grid};

const SECS_PER_YEAR: f64 = 365.25 * 86_400.0;
const SUBSTEPS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Number of instruments (`SIM000`, `SIM001`, ...).
    pub instruments: usize,
    pub bar_secs: u32,
    pub seed: u64,
    /// First bar's start, ns since the Unix epoch.
    pub start: Timestamp,
    /// Stop after this many cross-sections (`None`: endless).
    pub bars: Option<u64>,
    /// Correlation of each instrument with the market factor.
    pub correlation: f64,
    /// Annualised volatility range; each instrument draws from it.
    pub min_volatility: f64,
    pub max_volatility: f64,
    /// Chance per bar of a market-wide jump, and its mean size (log return).
    pub jump_probability: f64,
    pub jump_mean: f64,
    /// Persistence and shock size of the log-volatility AR(1).
    pub vol_persistence: f64,
    pub vol_of_vol: f64,
    /// Peak extra volatility around the open and close (0: none).
    pub seasonality: f64,
    /// Chance per bar of entering a crash, and of leaving one.
    pub crash_probability: f64,
    pub crash_exit_probability: f64,
    pub crash_vol_multiplier: f64,
    /// Market drift per bar during a crash (log return).
    pub crash_drift: f64,
    /// Full bid/ask spread in calm conditions, basis points of the price.
    pub spread_bps: f64,
    /// Emit a quote per instrument (at the bar's close) after each cross-section.
    pub quotes: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            instruments: 20,
            bar_secs: 60,
            seed: 42,
            start: 1_704_103_200 * NANOS_PER_SEC, // 2024-01-01 10:00 UTC
            bars: None,
            correlation: 0.5,
            min_volatility: 0.15,
            max_volatility: 0.60,
            jump_probability: 0.0005,
            jump_mean: -0.04,
            vol_persistence: 0.98,
            vol_of_vol: 0.08,
            seasonality: 0.8,
            crash_probability: 0.0002,
            crash_exit_probability: 0.02,
            crash_vol_multiplier: 3.0,
            crash_drift: -0.002,
            spread_bps: 2.0,
            quotes: false,
        }
    }
}

pub struct SimulatedMarket {
    config: SimulatorConfig,
    instruments: Vec<Instrument>,
    prices: Vec<f64>,
    volatility: Vec<f64>,
    /// Log-volatility deviations: market-wide, and per instrument.
    market_log_vol: f64,
    log_vol: Vec<f64>,
    crash: bool,
    /// Each instrument's volatility in the last cross-section.
    sigma: Vec<f64>,
    /// Quotes of the last cross-section, still to be emitted.
    pending_quotes: std::collections::VecDeque<Quote>,
    rng: StdRng,
    next_start: Timestamp,
    emitted: u64,
}

impl SimulatedMarket {
    pub fn new(config: SimulatorConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let instruments = (0..config.instruments)
            .map(|i| Instrument {
                id: i as u32,
                symbol: format!("SIM{i:03}"),
                tick_size: 0.01,
                lot_size: 1.0,
                currency: "USD".into(),
            })
            .collect();
        let prices = (0..config.instruments).map(|_| rng.gen_range(20.0..500.0_f64).round()).collect();
        let volatility: Vec<f64> = (0..config.instruments).map(|_| rng.gen_range(config.min_volatility..=config.max_volatility)).collect();
        let log_vol = vec![0.0; config.instruments];
        let sigma = volatility.clone();
        Self {
            next_start: config.start,
            config,
            instruments,
            prices,
            volatility,
            market_log_vol: 0.0,
            log_vol,
            crash: false,
            sigma,
            pending_quotes: Default::default(),
            rng,
            emitted: 0,
        }
    }

    fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }

    /// Volatility multiplier by time of day: 1, plus bumps at the US open and close.
    fn seasonal(&self, t: i64) -> f64 {
        let tod = t.rem_euclid(86_400 * NANOS_PER_SEC) as f64 / (60.0 * NANOS_PER_SEC as f64); // minutes
        let bump = |centre: f64| (-((tod - centre) / 45.0).powi(2)).exp();
        1.0 + self.config.seasonality * (bump(14.5 * 60.0) + bump(21.0 * 60.0))
    }

    /// Whether the market is in a crash regime.
    pub fn in_crash(&self) -> bool {
        self.crash
    }

    /// The full bid/ask spread of instrument `i` now, in price units: the calm
    /// spread scaled by how far its volatility is above its base, at most 10x.
    pub fn spread(&self, i: usize) -> f64 {
        let stress = (self.sigma[i] / self.volatility[i]).clamp(1.0, 10.0);
        self.prices[i] * self.config.spread_bps * 1e-4 * stress
    }

    /// A quote around `mid` for instrument `i` with its current spread, on
    /// the instrument's tick grid (at least one tick wide), sizes drawn at random.
    pub fn quote_at(&mut self, i: usize, mid: f64, time: Timestamp) -> Quote {
        let tick = self.instruments[i].tick_size;
        let half_ticks = (0.5 * self.spread(i) / tick).round().max(0.0);
        let bid_ticks = ((mid / tick).round() - half_ticks).max(1.0);
        let ask_ticks = bid_ticks + (2.0 * half_ticks).max(1.0);
        let size = LogNormal::new(6.0, 0.7).expect("valid lognormal");
        Quote {
            instrument: i as u32,
            time,
            bid: on_grid(bid_ticks, tick),
            bid_size: Distribution::<f64>::sample(&size, &mut self.rng).round(),
            ask: on_grid(ask_ticks, tick),
            ask_size: Distribution::<f64>::sample(&size, &mut self.rng).round(),
        }
    }

    /// The next cross-section of bars (one bar per instrument).
    pub fn next_bars(&mut self) -> Vec<Bar> {
        self.cross_section()
    }

    fn cross_section(&mut self) -> Vec<Bar> {
        let c = self.config;
        self.crash = if self.crash { !self.rng.gen_bool(c.crash_exit_probability.clamp(0.0, 1.0)) } else { self.rng.gen_bool(c.crash_probability.clamp(0.0, 1.0)) };
        let (regime_vol, drift, rho) = if self.crash { (c.crash_vol_multiplier, c.crash_drift, 0.95) } else { (1.0, 0.0, c.correlation.clamp(-1.0, 1.0)) };
        let shock = self.normal();
        self.market_log_vol = c.vol_persistence * self.market_log_vol + c.vol_of_vol * shock;
        let season = self.seasonal(self.next_start);
        let dt = f64::from(self.config.bar_secs) / SECS_PER_YEAR / SUBSTEPS as f64;
        let idio = (1.0 - rho * rho).sqrt();
        let jump = (self.rng.gen_bool(self.config.jump_probability.clamp(0.0, 1.0)))
            .then(|| self.config.jump_mean * (1.0 + 0.5 * self.normal()));
        let market: Vec<f64> = (0..SUBSTEPS).map(|_| self.normal()).collect();
        let volume = LogNormal::new(8.0, 0.8).expect("valid lognormal");
        let mut bars = Vec::with_capacity(self.instruments.len());
        for i in 0..self.instruments.len() {
            let own = self.normal();
            self.log_vol[i] = c.vol_persistence * self.log_vol[i] + c.vol_of_vol * own;
            let sigma = self.volatility[i] * (self.market_log_vol + self.log_vol[i]).exp() * season * regime_vol;
            self.sigma[i] = sigma;
            let open = self.prices[i];
            let (mut high, mut low, mut p) = (open, open, open);
            for (k, m) in market.iter().enumerate() {
                let z = rho * m + idio * self.normal();
                let mut r = drift / SUBSTEPS as f64 - 0.5 * sigma * sigma * dt + sigma * dt.sqrt() * z;
                if k == SUBSTEPS / 2 {
                    r += jump.unwrap_or(0.0) * (1.0 + 0.3 * self.normal()).max(0.0);
                }
                p *= r.exp();
                high = high.max(p);
                low = low.min(p);
            }
            let round = |x: f64| (x * 100.0).round() / 100.0;
            let close = round(p).max(0.01);
            self.prices[i] = close;
            bars.push(Bar {
                instrument: i as u32,
                start: self.next_start,
                period_secs: self.config.bar_secs,
                open: round(open),
                high: round(high).max(close).max(round(open)),
                low: round(low).min(close).min(round(open)).max(0.01),
                close,
                volume: Distribution::<f64>::sample(&volume, &mut self.rng).round(),
            });
        }
        self.next_start += i64::from(self.config.bar_secs) * NANOS_PER_SEC;
        bars
    }
}

impl Feed for SimulatedMarket {
    fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    fn next_event(&mut self) -> Option<MarketEvent> {
        if let Some(q) = self.pending_quotes.pop_front() {
            return Some(MarketEvent::Quote(q));
        }
        if self.config.bars.is_some_and(|n| self.emitted >= n) {
            return None;
        }
        self.emitted += 1;
        let bars = self.cross_section();
        if self.config.quotes {
            for b in &bars {
                let close = b.start + i64::from(b.period_secs) * NANOS_PER_SEC;
                let q = self.quote_at(b.instrument as usize, b.close, close);
                self.pending_quotes.push_back(q);
            }
        }
        Some(MarketEvent::Bars(bars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_market_and_bars_are_consistent() {
        let cfg = SimulatorConfig { instruments: 5, bars: Some(200), ..Default::default() };
        let collect = |c: SimulatorConfig| {
            let mut m = SimulatedMarket::new(c);
            std::iter::from_fn(|| m.next_event()).collect::<Vec<_>>()
        };
        let (a, b) = (collect(cfg), collect(cfg));
        assert_eq!(a.len(), 200);
        assert_eq!(a, b, "seeded simulation must be reproducible");
        assert_ne!(a, collect(SimulatorConfig { seed: 7, ..cfg }));
        for ev in &a {
            let MarketEvent::Bars(bars) = ev else { panic!("bars only") };
            assert_eq!(bars.len(), 5);
            for b in bars {
                assert!(b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close) && b.low > 0.0, "{b:?}");
            }
        }
    }

    /// Mean absolute log return of instrument 0 and the lag-1 autocorrelation
    /// of absolute returns, over `bars` cross-sections.
    fn moves(cfg: SimulatorConfig, bars: u64) -> (f64, f64) {
        let mut m = SimulatedMarket::new(SimulatorConfig { bars: Some(bars), ..cfg });
        let closes: Vec<f64> = std::iter::from_fn(|| m.next_event())
            .map(|e| match e {
                MarketEvent::Bars(b) => b[0].close,
                _ => unreachable!(),
            })
            .collect();
        let r: Vec<f64> = closes.windows(2).map(|w| (w[1] / w[0]).ln().abs()).collect();
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        let cov = r.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>();
        (mean, cov / var)
    }

    #[test]
    fn crashes_move_more_and_volatility_clusters() {
        let base = SimulatorConfig { instruments: 3, jump_probability: 0.0, seasonality: 0.0, ..Default::default() };
        let (calm, _) = moves(SimulatorConfig { crash_probability: 0.0, ..base }, 4_000);
        let (crash, _) = moves(SimulatorConfig { crash_probability: 1.0, crash_exit_probability: 0.0, ..base }, 4_000);
        let mut m = SimulatedMarket::new(SimulatorConfig { crash_probability: 1.0, crash_exit_probability: 0.0, ..base });
        assert!(!m.in_crash());
        m.next_event();
        assert!(m.in_crash(), "the regime switched on the first bar");
        assert!(crash > 2.0 * calm, "crash regime {crash} vs calm {calm}");
        let (_, clustering) = moves(SimulatorConfig { crash_probability: 0.0, vol_of_vol: 0.3, ..base }, 20_000);
        let (_, none) = moves(SimulatorConfig { crash_probability: 0.0, vol_of_vol: 0.0, ..base }, 20_000);
        assert!(clustering > none + 0.05, "|r| autocorrelation {clustering} with stochastic volatility, {none} without");
    }

    #[test]
    fn quotes_straddle_the_close_and_spreads_widen_in_a_crash() {
        let cfg = SimulatorConfig { instruments: 4, bars: Some(300), quotes: true, jump_probability: 0.0, ..Default::default() };
        let mut calm = SimulatedMarket::new(SimulatorConfig { crash_probability: 0.0, ..cfg });
        let (mut last_bars, mut quotes) = (Vec::new(), 0);
        let mut calm_spread = 0.0;
        while let Some(e) = calm.next_event() {
            match e {
                MarketEvent::Bars(b) => last_bars = b,
                MarketEvent::Quote(q) => {
                    quotes += 1;
                    let bar = &last_bars[q.instrument as usize];
                    assert_eq!(q.time, bar.start + 60 * NANOS_PER_SEC);
                    assert!(q.bid < q.ask && q.bid <= bar.close + 1e-9 && q.ask >= bar.close - 1e-9, "{q:?} around {}", bar.close);
                    assert!(q.bid_size >= 0.0 && q.ask_size >= 0.0);
                    calm_spread += (q.ask - q.bid) / bar.close;
                }
            }
        }
        assert_eq!(quotes, 4 * 300, "one quote per instrument and bar");
        let mut crash = SimulatedMarket::new(SimulatorConfig { crash_probability: 1.0, crash_exit_probability: 0.0, ..cfg });
        let mut crash_spread = 0.0;
        for _ in 0..300 {
            let bars = crash.next_bars();
            crash_spread += (0..4).map(|i| crash.spread(i) / bars[i].close).sum::<f64>();
        }
        assert!(crash_spread > 2.0 * calm_spread, "crash {crash_spread} vs calm {calm_spread}");
    }

    #[test]
    fn volatility_peaks_at_the_open_and_close() {
        let m = SimulatedMarket::new(SimulatorConfig::default());
        let at = |h: i64, min: i64| m.seasonal((h * 3600 + min * 60) * NANOS_PER_SEC);
        assert!(at(14, 30) > 1.7 && at(21, 0) > 1.7, "{} {}", at(14, 30), at(21, 0));
        assert!(at(3, 0) < 1.01);
    }
}
