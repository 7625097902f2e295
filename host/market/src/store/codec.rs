//! Compact blocks of time-ordered records: zigzag LEB128 varints of deltas,
//! prices and sizes as integers at a 1e-8 resolution. Consecutive ticks differ
//! little, so most fields take one or two bytes.
//!
//! Layout (the kind byte's top bit set): `kind u8, count varint, first time,
//! time unit, one unit per field, then per record: time delta from the
//! previous record in time units (the first record's is 0), then each field
//! as a delta from the previous record's same field, in that field's unit`.
//! A unit is the greatest common divisor of what it divides (the time
//! deltas; a field's fixed-point values), so the division is exact: daily
//! bars step in units of a day, not of a nanosecond, and a price quoted to
//! three decimals in thousandths, not in 1e-8. That halves a daily bar.
//!
//! Blocks written before units (top bit clear) have no units: every unit is 1
//! and the first time delta is from 0. Both decode.

use super::StoreError;

/// Fixed-point scale: values are stored as `round(x * SCALE)`.
pub const SCALE: f64 = 1e8;

/// A stored record: a time and up to five fixed-point fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub time: i64,
    pub fields: [f64; 5],
}

impl Row {
    /// A bar row (open, high, low, close, volume) as the bar of `instrument`.
    pub fn to_bar(&self, instrument: crate::InstrumentId, period_secs: u32) -> crate::Bar {
        let [open, high, low, close, volume] = self.fields;
        crate::Bar { instrument, start: self.time, period_secs, open, high, low, close, volume }
    }
}

/// What a block holds, and so how many fields each row uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// price, size
    Trade = 1,
    /// bid, bid size, ask, ask size
    Quote = 2,
    /// open, high, low, close, volume
    Bar = 3,
}

impl Kind {
    pub fn width(self) -> usize {
        match self {
            Kind::Trade => 2,
            Kind::Quote => 4,
            Kind::Bar => 5,
        }
    }

    fn from_u8(b: u8) -> Result<Self, StoreError> {
        match b {
            1 => Ok(Kind::Trade),
            2 => Ok(Kind::Quote),
            3 => Ok(Kind::Bar),
            other => Err(StoreError::Corrupt(format!("unknown block kind {other}"))),
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, StoreError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or_else(|| StoreError::Corrupt(format!("block truncated at byte {at}")))?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(StoreError::Corrupt(format!("varint too long at byte {at}")))
}

fn get_signed(bytes: &[u8], at: &mut usize) -> Result<i64, StoreError> {
    let v = get_varint(bytes, at)?;
    Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// `x` in fixed point, or an error naming it when it does not fit.
pub fn fixed(x: f64) -> Result<i64, StoreError> {
    let v = (x * SCALE).round();
    if !v.is_finite() || v.abs() >= 9.2e18 {
        return Err(StoreError::Unrepresentable(x));
    }
    Ok(v as i64)
}

/// Marks a block with units (see the module's header).
const WITH_UNITS: u8 = 0x80;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Encodes rows (in time order) of `kind`.
pub fn encode(kind: Kind, rows: &[Row]) -> Result<Vec<u8>, StoreError> {
    let w = kind.width();
    let values: Vec<[i64; 5]> = rows
        .iter()
        .map(|r| {
            let mut v = [0i64; 5];
            for (slot, &field) in v.iter_mut().zip(&r.fields[..w]) {
                *slot = fixed(field)?;
            }
            Ok(v)
        })
        .collect::<Result<_, StoreError>>()?;
    // Units: gcds, never 0 (an all-zero column has unit 1).
    let time_unit = rows.windows(2).fold(0, |g, p| gcd(g, p[1].time.wrapping_sub(p[0].time).unsigned_abs())).max(1);
    let mut units = [1u64; 5];
    for (k, unit) in units.iter_mut().enumerate().take(w) {
        *unit = values.iter().fold(0, |g, v| gcd(g, v[k].unsigned_abs())).max(1);
    }
    let mut out = Vec::with_capacity(16 + rows.len() * (1 + 2 * w));
    out.push(kind as u8 | WITH_UNITS);
    put_varint(&mut out, rows.len() as u64);
    let first = rows.first().map_or(0, |r| r.time);
    put_signed(&mut out, first);
    put_varint(&mut out, time_unit);
    for unit in &units[..w] {
        put_varint(&mut out, *unit);
    }
    let (mut time, mut prev) = (first, [0i64; 5]);
    for (r, v) in rows.iter().zip(&values) {
        put_signed(&mut out, r.time.wrapping_sub(time) / time_unit as i64);
        time = r.time;
        for k in 0..w {
            put_signed(&mut out, v[k].wrapping_sub(prev[k]) / units[k] as i64);
            prev[k] = v[k];
        }
    }
    Ok(out)
}

/// Decodes a block.
pub fn decode(bytes: &[u8]) -> Result<(Kind, Vec<Row>), StoreError> {
    let head = *bytes.first().ok_or_else(|| StoreError::Corrupt("empty block".into()))?;
    let kind = Kind::from_u8(head & !WITH_UNITS)?;
    let mut at = 1;
    let n = get_varint(bytes, &mut at)? as usize;
    if n > bytes.len() {
        return Err(StoreError::Corrupt(format!("block claims {n} rows in {} bytes", bytes.len())));
    }
    let w = kind.width();
    let (mut time, mut time_unit, mut units) = (0i64, 1i64, [1i64; 5]);
    if head & WITH_UNITS != 0 {
        time = get_signed(bytes, &mut at)?;
        time_unit = get_varint(bytes, &mut at)? as i64;
        for unit in units.iter_mut().take(w) {
            *unit = get_varint(bytes, &mut at)? as i64;
        }
    }
    let mut rows = Vec::with_capacity(n);
    let mut prev = [0i64; 5];
    for _ in 0..n {
        time = time.wrapping_add(get_signed(bytes, &mut at)?.wrapping_mul(time_unit));
        let mut fields = [0.0; 5];
        for k in 0..w {
            prev[k] = prev[k].wrapping_add(get_signed(bytes, &mut at)?.wrapping_mul(units[k]));
            fields[k] = prev[k] as f64 / SCALE;
        }
        rows.push(Row { time, fields });
    }
    if at != bytes.len() {
        return Err(StoreError::Corrupt(format!("{} trailing bytes after {n} rows", bytes.len() - at)));
    }
    Ok((kind, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn random_rows_round_trip_exactly_at_the_stored_resolution() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for kind in [Kind::Trade, Kind::Quote, Kind::Bar] {
            let mut t = 1_381_219_200_000_000_000i64;
            let rows: Vec<Row> = (0..5_000)
                .map(|_| {
                    t += rng.gen_range(0..5_000_000_000);
                    let f = std::array::from_fn(|_| (rng.gen_range(0.0..100_000.0f64) * 100.0).round() / 100.0);
                    Row { time: t, fields: f }
                })
                .collect();
            let bytes = encode(kind, &rows).unwrap();
            let (k, back) = decode(&bytes).unwrap();
            assert_eq!(k, kind);
            for (a, b) in rows.iter().zip(&back) {
                assert_eq!(a.time, b.time);
                assert_eq!(&a.fields[..kind.width()], &b.fields[..kind.width()]);
            }
        }
    }

    #[test]
    fn real_tick_prices_survive_and_compress() {
        let rows: Vec<Row> = (0..1000).map(|i| Row { time: 1_000 + i * 7_000_000, fields: [167.42 + (i % 7) as f64 * 0.01, 100.0, 0.0, 0.0, 0.0] }).collect();
        let bytes = encode(Kind::Trade, &rows).unwrap();
        assert!(bytes.len() < 1000 * 12, "{} bytes for 1000 trades", bytes.len());
        assert_eq!(decode(&bytes).unwrap().1[3].fields[0], 167.45);
    }

    #[test]
    fn daily_bars_step_in_days_and_prices_in_their_quoted_decimals() {
        let day = 86_400_000_000_000i64;
        let rows: Vec<Row> = (0..1000)
            .map(|i| {
                let p = 28.751 + (i % 13) as f64 * 0.137;
                Row { time: 1_356_998_400_000_000_000 + (i + 2 * (i / 5)) * day, fields: [p, p + 0.5, p - 0.25, p + 0.125, 9_225_779.0 + (i * 1_000) as f64] }
            })
            .collect();
        let bytes = encode(Kind::Bar, &rows).unwrap();
        assert!(bytes.len() < 1000 * 14, "{} bytes for 1000 daily bars", bytes.len());
        let back = decode(&bytes).unwrap().1;
        let exact = |r: &Row| (r.time, r.fields.map(|f| fixed(f).unwrap()));
        assert_eq!(back.iter().map(exact).collect::<Vec<_>>(), rows.iter().map(exact).collect::<Vec<_>>());
    }

    #[test]
    fn blocks_written_before_units_still_decode() {
        // kind 1 (trade), 2 rows: time deltas 5 and 3; price 1.5 then 2.0 (x 1e8), sizes 10 then 10.
        let mut old = vec![1u8, 2];
        for v in [5i64, 150_000_000, 1_000_000_000, 3, 50_000_000, 0] {
            put_signed(&mut old, v);
        }
        let (kind, rows) = decode(&old).unwrap();
        assert_eq!(kind, Kind::Trade);
        assert_eq!((rows[1].time, rows[1].fields[0], rows[1].fields[1]), (8, 2.0, 10.0));
    }

    #[test]
    fn damage_is_detected_not_misread() {
        let rows = [Row { time: 5, fields: [1.5, 2.0, 0.0, 0.0, 0.0] }];
        let bytes = encode(Kind::Trade, &rows).unwrap();
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(StoreError::Corrupt(_))));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(decode(&extra), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode(&[9]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode(&[9 | WITH_UNITS]), Err(StoreError::Corrupt(_))));
        assert!(matches!(encode(Kind::Trade, &[Row { time: 0, fields: [1e12, 0.0, 0.0, 0.0, 0.0] }]), Err(StoreError::Unrepresentable(_))));
    }
}
