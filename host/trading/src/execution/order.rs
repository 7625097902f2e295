//! The order state machine: one exhaustive (state, event) table. Every
//! pair is listed (no wildcard), so adding a state or an event does not
//! compile until each new pair has a decision; an impossible pair is an
//! error, logged and counted by the tracker, never patched over.

use serde::Serialize;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderState {
    /// Created from an intent, not yet past risk.
    New,
    /// Past risk, sent to the broker, not acknowledged.
    Sent,
    Working,
    PartiallyFilled,
    Filled,
    /// A cancel was requested and not yet confirmed.
    PendingCancel,
    Cancelled,
    /// Refused by risk or by the broker.
    Rejected,
    Expired,
}

impl OrderState {
    /// No event can move it any more.
    pub fn is_final(self) -> bool {
        matches!(self, OrderState::Filled | OrderState::Cancelled | OrderState::Rejected | OrderState::Expired)
    }
}

/// What can happen to an order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderEvent {
    RiskAccepted,
    RiskRejected,
    /// The broker accepted it.
    Acknowledged,
    BrokerRejected,
    /// A fill; `complete` when nothing remains.
    Fill { complete: bool },
    CancelRequested,
    Cancelled,
    /// The cancel came too late or was refused; the order still works.
    CancelRejected,
    Expired,
}

/// An event that makes no sense in a state.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error, Serialize)]
#[error("order in state {state:?} cannot take event {event:?}")]
pub struct IllegalTransition {
    pub state: OrderState,
    pub event: OrderEvent,
}

/// The table.
pub fn transition(state: OrderState, event: OrderEvent) -> Result<OrderState, IllegalTransition> {
    use OrderEvent as E;
    use OrderState as S;
    let next = match (state, event) {
        (S::New, E::RiskAccepted) => S::Sent,
        (S::New, E::RiskRejected) => S::Rejected,
        (S::New, E::Acknowledged | E::BrokerRejected | E::Fill { .. } | E::CancelRequested | E::Cancelled | E::CancelRejected | E::Expired) => return Err(IllegalTransition { state, event }),

        (S::Sent, E::Acknowledged) => S::Working,
        (S::Sent, E::BrokerRejected) => S::Rejected,
        // A fill can overtake its acknowledgement on the wire.
        (S::Sent, E::Fill { complete: true }) => S::Filled,
        (S::Sent, E::Fill { complete: false }) => S::PartiallyFilled,
        (S::Sent, E::CancelRequested) => S::PendingCancel,
        (S::Sent, E::Expired) => S::Expired,
        // Ended before any acknowledgement: an IOC order a remote broker held
        // for its price and cancelled unsent, or a broker's own cancel.
        (S::Sent, E::Cancelled) => S::Cancelled,
        (S::Sent, E::RiskAccepted | E::RiskRejected | E::CancelRejected) => return Err(IllegalTransition { state, event }),

        (S::Working | S::PartiallyFilled, E::Fill { complete: true }) => S::Filled,
        (S::Working | S::PartiallyFilled, E::Fill { complete: false }) => S::PartiallyFilled,
        (S::Working | S::PartiallyFilled, E::CancelRequested) => S::PendingCancel,
        (S::Working | S::PartiallyFilled, E::Expired) => S::Expired,
        // A broker may cancel on its own (end of day, margin).
        (S::Working | S::PartiallyFilled, E::Cancelled) => S::Cancelled,
        (S::Working | S::PartiallyFilled, E::RiskAccepted | E::RiskRejected | E::Acknowledged | E::BrokerRejected | E::CancelRejected) => {
            return Err(IllegalTransition { state, event });
        }

        (S::PendingCancel, E::Cancelled) => S::Cancelled,
        (S::PendingCancel, E::CancelRejected) => S::Working,
        // Fills and expiry can beat the cancel.
        (S::PendingCancel, E::Fill { complete: true }) => S::Filled,
        (S::PendingCancel, E::Fill { complete: false }) => S::PendingCancel,
        (S::PendingCancel, E::Expired) => S::Expired,
        (S::PendingCancel, E::Acknowledged) => S::PendingCancel,
        (S::PendingCancel, E::BrokerRejected) => S::Rejected,
        (S::PendingCancel, E::RiskAccepted | E::RiskRejected | E::CancelRequested) => return Err(IllegalTransition { state, event }),

        (
            S::Filled | S::Cancelled | S::Rejected | S::Expired,
            E::RiskAccepted | E::RiskRejected | E::Acknowledged | E::BrokerRejected | E::Fill { .. } | E::CancelRequested | E::Cancelled | E::CancelRejected | E::Expired,
        ) => return Err(IllegalTransition { state, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATES: [OrderState; 9] = [
        OrderState::New,
        OrderState::Sent,
        OrderState::Working,
        OrderState::PartiallyFilled,
        OrderState::Filled,
        OrderState::PendingCancel,
        OrderState::Cancelled,
        OrderState::Rejected,
        OrderState::Expired,
    ];

    fn event() -> impl Strategy<Value = OrderEvent> {
        prop_oneof![
            Just(OrderEvent::RiskAccepted),
            Just(OrderEvent::RiskRejected),
            Just(OrderEvent::Acknowledged),
            Just(OrderEvent::BrokerRejected),
            any::<bool>().prop_map(|complete| OrderEvent::Fill { complete }),
            Just(OrderEvent::CancelRequested),
            Just(OrderEvent::Cancelled),
            Just(OrderEvent::CancelRejected),
            Just(OrderEvent::Expired),
        ]
    }

    #[test]
    fn final_states_take_no_event_and_every_other_state_can_move() {
        let events = [
            OrderEvent::RiskAccepted,
            OrderEvent::RiskRejected,
            OrderEvent::Acknowledged,
            OrderEvent::BrokerRejected,
            OrderEvent::Fill { complete: false },
            OrderEvent::Fill { complete: true },
            OrderEvent::CancelRequested,
            OrderEvent::Cancelled,
            OrderEvent::CancelRejected,
            OrderEvent::Expired,
        ];
        for s in STATES {
            let legal = events.iter().filter(|e| transition(s, **e).is_ok()).count();
            if s.is_final() {
                assert_eq!(legal, 0, "{s:?}");
            } else {
                assert!(legal > 0, "{s:?} would be a trap");
            }
        }
    }

    #[test]
    fn the_usual_lives_of_an_order() {
        use OrderEvent as E;
        let run = |events: &[OrderEvent]| events.iter().try_fold(OrderState::New, |s, e| transition(s, *e));
        assert_eq!(run(&[E::RiskAccepted, E::Acknowledged, E::Fill { complete: false }, E::Fill { complete: true }]), Ok(OrderState::Filled));
        assert_eq!(run(&[E::RiskRejected]), Ok(OrderState::Rejected));
        assert_eq!(run(&[E::RiskAccepted, E::Acknowledged, E::CancelRequested, E::Cancelled]), Ok(OrderState::Cancelled));
        assert_eq!(run(&[E::RiskAccepted, E::Acknowledged, E::CancelRequested, E::Fill { complete: true }]), Ok(OrderState::Filled), "the fill won the race");
        assert_eq!(run(&[E::RiskAccepted, E::Fill { complete: true }]), Ok(OrderState::Filled), "a fill before its ack");
        let e = run(&[E::RiskAccepted, E::Acknowledged, E::Fill { complete: true }, E::Cancelled]).unwrap_err();
        assert_eq!(e, IllegalTransition { state: OrderState::Filled, event: E::Cancelled });
        assert_eq!(e.to_string(), "order in state Filled cannot take event Cancelled");
    }

    proptest! {
        /// Whatever the events, a final state never changes, and a refused
        /// event names the state it met and itself.
        #[test]
        fn final_states_are_final_and_errors_change_nothing(events in proptest::collection::vec(event(), 0..40)) {
            let mut state = OrderState::New;
            for e in events {
                match transition(state, e) {
                    Ok(next) => {
                        prop_assert!(!state.is_final(), "{state:?} is final but {e:?} moved it to {next:?}");
                        state = next;
                    }
                    Err(err) => prop_assert_eq!(err, IllegalTransition { state, event: e }),
                }
            }
        }
    }
}
