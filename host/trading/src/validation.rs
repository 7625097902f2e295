//! Contract checks on every intent before it reaches the broker: numbers a
//! well-formed plugin can never produce. A violation quarantines the plugin;
//! risk limits (a separate, later layer) merely reject.

use stratbox_contract::{Instrument, Intent, OrderType, StopDecision};

/// Bounds past which a number is absurd rather than large.
#[derive(Debug, Clone, Copy)]
pub struct IntentBounds {
    pub max_quantity: f64,
    pub max_price: f64,
}

impl Default for IntentBounds {
    fn default() -> Self {
        Self { max_quantity: 1e9, max_price: 1e9 }
    }
}

/// A number as a person reads it: 1e300, not three hundred digits.
pub fn show(x: f64) -> String {
    if x != 0.0 && x.is_finite() && !(1e-6..1e15).contains(&x.abs()) { format!("{x:e}") } else { format!("{x}") }
}

fn instrument(instruments: &[Instrument], id: u32) -> Result<&Instrument, String> {
    instruments.get(id as usize).ok_or_else(|| format!("unknown instrument id {id} (this run has {})", instruments.len()))
}

fn quantity(q: f64, signed: bool, inst: &Instrument, b: &IntentBounds) -> Result<(), String> {
    let sym = &inst.symbol;
    if !q.is_finite() {
        return Err(format!("quantity {} for {sym} is not a finite number", show(q)));
    }
    if !signed && q <= 0.0 {
        return Err(format!("quantity {} for {sym} must be positive (the side gives the direction)", show(q)));
    }
    if q.abs() > b.max_quantity {
        return Err(format!("quantity {} for {sym} exceeds the sanity bound {}", show(q), show(b.max_quantity)));
    }
    if inst.lot_size > 0.0 {
        let lots = q / inst.lot_size;
        if (lots - lots.round()).abs() > 1e-6 {
            return Err(format!("quantity {} for {sym} is not a multiple of its lot size {}", show(q), inst.lot_size));
        }
    }
    Ok(())
}

fn price(p: f64, what: &str, inst: &Instrument, b: &IntentBounds) -> Result<(), String> {
    if !p.is_finite() || p <= 0.0 || p > b.max_price {
        return Err(format!("{what} price {} for {} must be a finite number in (0, {}]", show(p), inst.symbol, show(b.max_price)));
    }
    Ok(())
}

/// Checks a stop policy's decision: a known instrument, and stop-loss and
/// take-profit levels that are finite, positive prices.
pub fn validate_stop(decision: &StopDecision, instruments: &[Instrument], bounds: &IntentBounds) -> Result<(), String> {
    match decision {
        StopDecision::SetLevels(l) => {
            let inst = instrument(instruments, l.instrument)?;
            l.stop_loss.map_or(Ok(()), |p| price(p, "stop-loss", inst, bounds))?;
            l.take_profit.map_or(Ok(()), |p| price(p, "take-profit", inst, bounds))
        }
        StopDecision::Exit(id) => instrument(instruments, *id).map(drop),
    }
}

/// Checks one intent; the error names the field, value and instrument.
pub fn validate(intent: &Intent, instruments: &[Instrument], bounds: &IntentBounds) -> Result<(), String> {
    match intent {
        Intent::Order(o) => {
            let inst = instrument(instruments, o.instrument)?;
            quantity(o.quantity, false, inst, bounds)?;
            match o.order_type {
                OrderType::Market => Ok(()),
                OrderType::Limit(p) => price(p, "limit", inst, bounds),
                OrderType::Stop(p) => price(p, "stop", inst, bounds),
            }
        }
        Intent::Target(t) => quantity(t.quantity, true, instrument(instruments, t.instrument)?, bounds),
        Intent::Cancel(_) => Ok(()),
        Intent::CancelAll(i) => i.map_or(Ok(()), |id| instrument(instruments, id).map(drop)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_contract::{OrderIntent, Side, TargetPosition, TimeInForce};

    fn order(quantity: f64, order_type: OrderType) -> Intent {
        Intent::Order(OrderIntent { instrument: 0, side: Side::Buy, quantity, order_type, time_in_force: TimeInForce::Gtc, tag: 0 })
    }

    #[test]
    fn malformed_numbers_are_named() {
        let inst = [Instrument { id: 0, symbol: "SPY".into(), tick_size: 0.01, lot_size: 1.0, currency: "USD".into() }];
        let b = IntentBounds::default();
        let err = |i: Intent| validate(&i, &inst, &b).unwrap_err();
        assert!(err(order(f64::NAN, OrderType::Market)).contains("quantity NaN for SPY"));
        assert!(err(order(-1.0, OrderType::Market)).contains("must be positive"));
        assert!(err(order(1e300, OrderType::Market)).contains("sanity bound"));
        assert!(err(order(1.5, OrderType::Market)).contains("lot size"));
        assert!(err(order(1.0, OrderType::Limit(f64::INFINITY))).contains("limit price inf"));
        assert!(err(order(1.0, OrderType::Stop(-3.0))).contains("stop price -3"));
        assert!(err(Intent::Target(TargetPosition { instrument: 9, quantity: 1.0 })).contains("unknown instrument id 9"));
        assert!(validate(&Intent::Target(TargetPosition { instrument: 0, quantity: -5.0 }), &inst, &b).is_ok());
        assert!(validate(&order(3.0, OrderType::Limit(400.0)), &inst, &b).is_ok());
        let levels = |stop_loss, take_profit| StopDecision::SetLevels(stratbox_contract::StopLevels { instrument: 0, stop_loss, take_profit });
        assert!(validate_stop(&levels(Some(90.0), None), &inst, &b).is_ok());
        assert!(validate_stop(&levels(None, Some(f64::NAN)), &inst, &b).unwrap_err().contains("take-profit price NaN for SPY"));
        assert!(validate_stop(&levels(Some(-1.0), None), &inst, &b).unwrap_err().contains("stop-loss price -1 for SPY"));
        assert!(validate_stop(&StopDecision::Exit(4), &inst, &b).unwrap_err().contains("unknown instrument id 4"));
    }
}
