//! Compact blocks of time-ordered records: zigzag LEB128 varints of deltas,
//! prices and sizes as integers at a 1e-8 resolution. Consecutive ticks differ
//! little, so most fields take one or two bytes.
//!
//! Layout: `kind u8, count varint, then per record: time delta from the
//! previous record (the first from 0), then each field as a delta from the
//! previous record's same field`.

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

/// Encodes rows (in time order) of `kind`.
pub fn encode(kind: Kind, rows: &[Row]) -> Result<Vec<u8>, StoreError> {
    let w = kind.width();
    let mut out = Vec::with_capacity(8 + rows.len() * (2 + 2 * w));
    out.push(kind as u8);
    put_varint(&mut out, rows.len() as u64);
    let (mut time, mut prev) = (0i64, [0i64; 5]);
    for r in rows {
        put_signed(&mut out, r.time.wrapping_sub(time));
        time = r.time;
        for (k, p) in prev.iter_mut().enumerate().take(w) {
            let v = fixed(r.fields[k])?;
            put_signed(&mut out, v.wrapping_sub(*p));
            *p = v;
        }
    }
    Ok(out)
}

/// Decodes a block.
pub fn decode(bytes: &[u8]) -> Result<(Kind, Vec<Row>), StoreError> {
    let kind = Kind::from_u8(*bytes.first().ok_or_else(|| StoreError::Corrupt("empty block".into()))?)?;
    let mut at = 1;
    let n = get_varint(bytes, &mut at)? as usize;
    if n > bytes.len() {
        return Err(StoreError::Corrupt(format!("block claims {n} rows in {} bytes", bytes.len())));
    }
    let w = kind.width();
    let mut rows = Vec::with_capacity(n);
    let (mut time, mut prev) = (0i64, [0i64; 5]);
    for _ in 0..n {
        time = time.wrapping_add(get_signed(bytes, &mut at)?);
        let mut fields = [0.0; 5];
        for k in 0..w {
            prev[k] = prev[k].wrapping_add(get_signed(bytes, &mut at)?);
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
    fn damage_is_detected_not_misread() {
        let rows = [Row { time: 5, fields: [1.5, 2.0, 0.0, 0.0, 0.0] }];
        let bytes = encode(Kind::Trade, &rows).unwrap();
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(StoreError::Corrupt(_))));
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(decode(&extra), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode(&[9]), Err(StoreError::Corrupt(_))));
        assert!(matches!(encode(Kind::Trade, &[Row { time: 0, fields: [1e12, 0.0, 0.0, 0.0, 0.0] }]), Err(StoreError::Unrepresentable(_))));
    }
}
