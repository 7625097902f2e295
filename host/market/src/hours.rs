//! Instrument metadata beyond what plugins see: trading hours, and the
//! record the market store keeps per instrument.
//!
//! Trading hours are sessions per weekday in a time zone, as Capital.com
//! publishes them (`"mon": ["00:00 - 22:00", "23:05 - 00:00"], "zone":
//! "UTC"`): an end of `00:00` means midnight at the end of that day.

use chrono::{Datelike, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use super::{Instrument, Timestamp};

/// One session: minutes after local midnight, `[open, close)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub open: u16,
    pub close: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradingHours {
    pub zone: chrono_tz::Tz,
    /// Sessions per weekday, Monday first.
    pub days: [Vec<Session>; 7],
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl TradingHours {
    /// Always open.
    pub fn always(zone: chrono_tz::Tz) -> Self {
        Self { zone, days: std::array::from_fn(|_| vec![Session { open: 0, close: 1440 }]) }
    }

    /// Reads Capital.com's `openingHours`; the error names the day and text at fault.
    pub fn from_capital(v: &serde_json::Value) -> Result<Self, String> {
        let zone_name = v.get("zone").and_then(|z| z.as_str()).unwrap_or("UTC");
        let zone: chrono_tz::Tz = zone_name.parse().map_err(|_| format!("unknown time zone `{zone_name}`"))?;
        let mut days: [Vec<Session>; 7] = Default::default();
        for (k, day) in DAYS.iter().enumerate() {
            let Some(list) = v.get(*day) else { continue };
            let list = list.as_array().ok_or_else(|| format!("`{day}` is not a list"))?;
            for item in list {
                let text = item.as_str().ok_or_else(|| format!("`{day}`: {item} is not a string"))?;
                days[k].push(parse_session(text).ok_or_else(|| format!("`{day}`: `{text}` is not `HH:MM - HH:MM`"))?);
            }
        }
        Ok(Self { zone, days })
    }

    /// Whether `t` falls inside a session.
    pub fn is_open(&self, t: Timestamp) -> bool {
        let local = self.zone.timestamp_nanos(t);
        let minute = (local.hour() * 60 + local.minute()) as u16;
        self.days[local.weekday().num_days_from_monday() as usize].iter().any(|s| s.open <= minute && minute < s.close)
    }
}

fn parse_session(text: &str) -> Option<Session> {
    let (a, b) = text.split_once('-')?;
    let minutes = |s: &str| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (open, close) = (minutes(a)?, minutes(b)?);
    // "23:05 - 00:00": until midnight.
    let close = if close == 0 { 1440 } else { close };
    (open < close).then_some(Session { open, close })
}

/// What the market store keeps about an instrument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstrumentMeta {
    pub symbol: String,
    pub tick_size: f64,
    pub lot_size: f64,
    pub currency: String,
    /// `None`: unknown (treated as always open).
    pub trading_hours: Option<TradingHours>,
}

impl InstrumentMeta {
    pub fn new(instrument: &Instrument, trading_hours: Option<TradingHours>) -> Self {
        Self { symbol: instrument.symbol.clone(), tick_size: instrument.tick_size, lot_size: instrument.lot_size, currency: instrument.currency.clone(), trading_hours }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capital_opening_hours_are_read_and_applied() {
        // The Postman collection's SILVER.
        let v = serde_json::json!({
            "mon": ["00:00 - 22:00", "23:05 - 00:00"], "tue": ["00:00 - 22:00", "23:05 - 00:00"],
            "wed": ["00:00 - 22:00", "23:05 - 00:00"], "thu": ["00:00 - 22:00", "23:05 - 00:00"],
            "fri": ["00:00 - 22:00"], "sat": [], "sun": ["23:05 - 00:00"], "zone": "UTC"
        });
        let h = TradingHours::from_capital(&v).unwrap();
        let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap().and_utc().timestamp_nanos_opt().unwrap();
        assert!(h.is_open(at("2024-01-08 10:00"))); // Monday
        assert!(!h.is_open(at("2024-01-08 22:30")), "the daily break");
        assert!(h.is_open(at("2024-01-08 23:30")));
        assert!(!h.is_open(at("2024-01-13 12:00")), "Saturday");
        assert!(!h.is_open(at("2024-01-14 23:00")) && h.is_open(at("2024-01-14 23:10")), "Sunday evening open");
        let ny = TradingHours { zone: chrono_tz::America::New_York, days: std::array::from_fn(|d| if d < 5 { vec![Session { open: 570, close: 960 }] } else { vec![] }) };
        assert!(ny.is_open(at("2024-07-01 13:30")) && !ny.is_open(at("2024-07-01 13:29")), "09:30 New York is 13:30 UTC in summer");
        assert!(ny.is_open(at("2024-01-08 14:30")) && !ny.is_open(at("2024-01-08 14:29")), "and 14:30 UTC in winter");
        let e = TradingHours::from_capital(&serde_json::json!({ "mon": ["9 to 5"] })).unwrap_err();
        assert!(e.contains("mon") && e.contains("9 to 5"), "{e}");
        assert!(TradingHours::from_capital(&serde_json::json!({ "zone": "Mars/Olympus" })).unwrap_err().contains("Mars/Olympus"));
    }
}
