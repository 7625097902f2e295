//! Reading back the bytes a plugin wrote in `export_state` (hot swap,
//! restart): a little-endian cursor whose every read fails with a message
//! instead of panicking on state that is cut short.

/// A little-endian cursor over exported state.
#[derive(Debug, Clone, Copy)]
pub struct StateReader<'a>(&'a [u8]);

impl<'a> StateReader<'a> {
    /// Reads from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The next `N` bytes.
    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self.0.split_at_checked(N).ok_or_else(|| format!("state truncated: wanted {N} more bytes, {} left", self.0.len()))?;
        self.0 = rest;
        Ok(head.try_into().expect("split_at_checked gave N bytes"))
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        self.take().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, String> {
        self.take().map(u64::from_le_bytes)
    }

    /// A little-endian `i64`.
    pub fn i64(&mut self) -> Result<i64, String> {
        self.take().map(i64::from_le_bytes)
    }

    /// A little-endian `f64`.
    pub fn f64(&mut self) -> Result<f64, String> {
        self.take().map(f64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_order_and_refuses_a_short_state() {
        let mut bytes = 7u32.to_le_bytes().to_vec();
        bytes.extend(1.5f64.to_le_bytes());
        bytes.push(3);
        let mut r = StateReader::new(&bytes);
        assert_eq!((r.u32(), r.f64(), r.u8()), (Ok(7), Ok(1.5), Ok(3)));
        assert!(r.is_empty());
        assert_eq!(r.u64(), Err("state truncated: wanted 8 more bytes, 0 left".into()));
    }
}
