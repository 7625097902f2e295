//! Scoring an anomaly detector on history: replay the data through the
//! detector (the host's own pipeline, [`crate::backtest`]), then compare its
//! alarms with a list of known events.
//!
//! - Each event has a first bar that counts (its start, UTC) and a last day;
//!   its window is every bar starting on a day from the first bar's to the
//!   last. An alarm raised by a bar inside some event's window is a **hit**;
//!   any other is a **false alarm**.
//! - Per event, the **delay** to each level is the number of cross-sections
//!   from the event's first bar to the first alarm at that level or above
//!   inside the window (0: the first bar itself raised it); no such alarm is a miss.
//! - False alarms are counted by level, per year of data and per
//!   instrument-year (each instrument's own span of bars summed). Market-wide
//!   alarms (no instrument) count in both.
//!
//! The contract lets a detector raise at most one alarm per cross-section
//! (its worst), so these are counts of alarmed cross-sections, not of
//! instrument alarms.

use std::path::Path;

use serde::{Deserialize, Serialize};

use stratbox_market::{NANOS_PER_SEC, Timestamp};

use crate::backtest::AlarmRecord;

const DAY: i64 = 86_400 * NANOS_PER_SEC;
pub const LEVELS: [&str; 3] = ["elevated", "severe", "critical"];

fn rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).map_or(0, |k| k + 1)
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// An events file: `[[event]]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsToml {
    #[serde(rename = "event", default)]
    events: Vec<EventToml>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventToml {
    name: String,
    /// `YYYY-MM-DD` or `YYYY-MM-DD HH:MM` (UTC): the first bar that counts.
    first: String,
    /// `YYYY-MM-DD`, default the first bar's day.
    last: Option<String>,
    /// `sudden` (a crash the detector must call critical at once) or `index-move`.
    #[serde(default = "sudden")]
    kind: String,
    /// Where the event is seen (for a note; the data loaded decides what is replayed).
    #[serde(default)]
    data: String,
    /// The bar period it is scored on (`1h`, `1d` or seconds; default: any).
    period: Option<String>,
}

fn sudden() -> String {
    "sudden".into()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub name: String,
    pub first: Timestamp,
    /// The window ends before this time (the day after the last day).
    pub end: Timestamp,
    pub kind: String,
    pub data: String,
    /// Scored only on bars of this period (seconds), when set.
    pub period_secs: Option<u32>,
}

fn parse_time(s: &str) -> Option<Timestamp> {
    use chrono::{NaiveDate, NaiveDateTime};
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").ok().or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
    t.and_utc().timestamp_nanos_opt()
}

/// Reads an events file; every bad entry is named with its index and name.
pub fn load_events(path: &Path) -> Result<Vec<Event>, EventsError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EventsError::Read { path: p.clone(), source })?;
    parse_events(&text, &p)
}

pub fn parse_events(text: &str, path: &str) -> Result<Vec<Event>, EventsError> {
    let bad = |message: String| EventsError::Invalid { path: path.to_owned(), message };
    let file: EventsToml = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
    if file.events.is_empty() {
        return Err(bad("no [[event]] in the file".into()));
    }
    file.events
        .into_iter()
        .enumerate()
        .map(|(k, e)| {
            let at = |what: &str| format!("event {} (`{}`): {what}", k + 1, e.name);
            let first = parse_time(&e.first).ok_or_else(|| bad(at(&format!("first `{}` is not YYYY-MM-DD or YYYY-MM-DD HH:MM", e.first))))?;
            let last_day = match &e.last {
                Some(l) => parse_time(l).ok_or_else(|| bad(at(&format!("last `{l}` is not YYYY-MM-DD"))))?.div_euclid(DAY),
                None => first.div_euclid(DAY),
            };
            if last_day < first.div_euclid(DAY) {
                return Err(bad(at(&format!("last {} is before first {}", e.last.as_deref().unwrap_or(""), e.first))));
            }
            if e.kind != "sudden" && e.kind != "index-move" {
                return Err(bad(at(&format!("kind `{}`: expected sudden or index-move", e.kind))));
            }
            let period_secs = match e.period.as_deref() {
                None => None,
                Some("1d") => Some(86_400),
                Some("1h") => Some(3_600),
                Some(p) => Some(p.parse().map_err(|_| bad(at(&format!("period `{p}`: expected 1d, 1h or seconds"))))?),
            };
            Ok(Event { name: e.name, first, end: (last_day + 1) * DAY, kind: e.kind, data: e.data, period_secs })
        })
        .collect()
}

/// One event's outcome (an event of another bar period, or outside the data's span, is not in the data).
#[derive(Debug, Clone, Serialize)]
pub struct EventScore {
    pub event: Event,
    /// In the data replayed (its first bar is inside the data's span).
    pub in_data: bool,
    /// Per level (elevated, severe, critical): cross-sections from the event's first bar to the first alarm at or above it.
    pub delay: [Option<usize>; 3],
    pub first_alarm: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FalseAlarm {
    pub time: String,
    pub level: String,
    pub symbol: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub events: Vec<EventScore>,
    pub alarms: [u64; 3],
    /// Outside every event's window, by level.
    pub false_alarms: [u64; 3],
    pub years: f64,
    pub instrument_years: f64,
    pub false_per_year: [f64; 3],
    pub false_per_instrument_year: [f64; 3],
    /// Every false critical alarm (the goal is none), and the first 200 severe ones.
    pub false_critical: Vec<FalseAlarm>,
    pub false_severe_sample: Vec<FalseAlarm>,
}

/// Scores `alarms` raised over the cross-sections closing at `times` (bars of
/// `period_secs`) against `events`; `instrument_spans` are each instrument's span.
pub fn evaluate(alarms: &[AlarmRecord], events: &[Event], times: &[Timestamp], period_secs: u32, instrument_spans: &[Option<(Timestamp, Timestamp)>]) -> Evaluation {
    let period = i64::from(period_secs) * NANOS_PER_SEC;
    // An alarm's bar starts one period before its time.
    let start_of = |a: &AlarmRecord| a.time - period;
    let in_event = |t: Timestamp| events.iter().any(|e| t >= e.first.div_euclid(DAY) * DAY && t < e.end);
    let span = times.first().zip(times.last()).map(|(a, b)| (*a - period, *b));
    let mut scores = Vec::new();
    for e in events {
        let in_data = span.is_some_and(|(a, b)| e.first >= a && e.first < b) && e.period_secs.is_none_or(|p| p == period_secs);
        let mut delay = [None; 3];
        let mut first_alarm = None;
        if in_data {
            // The event's first cross-section: the first bar starting at or after `first`.
            let k0 = times.partition_point(|t| *t - period < e.first);
            for a in alarms.iter().filter(|a| start_of(a) >= e.first && start_of(a) < e.end) {
                let k = times.partition_point(|t| *t < a.time);
                let d = k.saturating_sub(k0);
                if first_alarm.is_none() {
                    first_alarm = Some(format!("{} {} {}: {}", stratbox_market::format_time(start_of(a)), a.level, a.symbol.as_deref().unwrap_or("market"), a.reason));
                }
                for (l, slot) in delay.iter_mut().enumerate() {
                    if rank(&a.level) > l && slot.is_none_or(|s| d < s) {
                        *slot = Some(d);
                    }
                }
            }
        }
        scores.push(EventScore { event: e.clone(), in_data, delay, first_alarm });
    }
    let (mut all, mut false_alarms) = ([0u64; 3], [0u64; 3]);
    let (mut false_critical, mut false_severe_sample) = (Vec::new(), Vec::new());
    for a in alarms {
        let r = rank(&a.level);
        if r == 0 {
            continue;
        }
        all[r - 1] += 1;
        if !in_event(start_of(a)) {
            false_alarms[r - 1] += 1;
            let f = || FalseAlarm { time: stratbox_market::format_time(start_of(a)), level: a.level.clone(), symbol: a.symbol.clone(), reason: a.reason.clone() };
            if r == 3 {
                false_critical.push(f());
            } else if r == 2 && false_severe_sample.len() < 200 {
                false_severe_sample.push(f());
            }
        }
    }
    let years = span.map_or(0.0, |(a, b)| (b - a) as f64 / (365.25 * DAY as f64));
    let instrument_years: f64 = instrument_spans.iter().flatten().map(|(a, b)| (b - a) as f64 / (365.25 * DAY as f64)).sum();
    let per = |n: u64, d: f64| if d > 0.0 { n as f64 / d } else { f64::NAN };
    Evaluation {
        events: scores,
        alarms: all,
        false_alarms,
        years,
        instrument_years,
        false_per_year: false_alarms.map(|n| per(n, years)),
        false_per_instrument_year: false_alarms.map(|n| per(n, instrument_years)),
        false_critical,
        false_severe_sample,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(day: i64, level: &str) -> AlarmRecord {
        // Daily bars: the bar of `day` closes at the next midnight.
        AlarmRecord { time: (day + 1) * DAY, detector: "d".into(), level: level.into(), symbol: None, reason: "r".into() }
    }

    #[test]
    fn delays_count_cross_sections_from_the_first_bar_and_other_days_are_false() {
        let events = parse_events("[[event]]\nname = \"crash\"\nfirst = \"1970-01-11\"\nlast = \"1970-01-13\"\n[[event]]\nname = \"later\"\nfirst = \"1970-03-01\"\n", "e.toml").unwrap();
        // Cross-sections on days 0..40, each closing the next midnight.
        let times: Vec<Timestamp> = (1..=40).map(|d| d * DAY).collect();
        let alarms = vec![alarm(3, "severe"), alarm(10, "elevated"), alarm(11, "elevated"), alarm(12, "critical"), alarm(20, "critical"), alarm(25, "elevated")];
        let spans = vec![Some((0, 40 * DAY)), Some((20 * DAY, 40 * DAY))];
        let e = evaluate(&alarms, &events, &times, 86_400, &spans);
        let crash = &e.events[0];
        assert!(crash.in_data);
        // Day 10 (the event day is 10: 1970-01-11 is day 10) raised elevated at once; critical on day 12, two bars on.
        assert_eq!(crash.delay, [Some(0), Some(2), Some(2)]);
        assert!(!e.events[1].in_data, "March 1970 is past the data");
        assert_eq!(e.alarms, [3, 1, 2]);
        assert_eq!(e.false_alarms, [1, 1, 1], "days 3, 20, 25 are outside the event");
        assert_eq!(e.false_critical.len(), 1);
        assert!(e.false_critical[0].time.starts_with("1970-01-21"), "{:?}", e.false_critical);
        assert!((e.instrument_years - 60.0 / 365.25).abs() < 1e-12);
    }

    #[test]
    fn bad_events_are_named() {
        let e = parse_events("[[event]]\nname = \"x\"\nfirst = \"1987-13-45\"\n", "e.toml").unwrap_err().to_string();
        assert!(e.contains("event 1 (`x`)") && e.contains("1987-13-45"), "{e}");
        let e = parse_events("[[event]]\nname = \"x\"\nfirst = \"1987-10-19\"\nkind = \"meltdown\"\n", "e.toml").unwrap_err().to_string();
        assert!(e.contains("meltdown"), "{e}");
        let e = parse_events("[[event]]\nname = \"x\"\nfirst = \"1987-10-19\"\nlast = \"1987-10-01\"\n", "e.toml").unwrap_err().to_string();
        assert!(e.contains("before first"), "{e}");
        assert!(parse_events("", "e.toml").is_err());
    }
}
