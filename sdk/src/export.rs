//! Glue between the wit-bindgen exports and the role traits. Everything here
//! is reached only through [`export_plugin!`](crate::export_plugin).
#![allow(missing_docs)] // hidden runtime glue

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::stratbox::plugin::{clock, inference, kv, log, market, orders, portfolio};
use crate::{
    Alarm, AnomalyDetector, Bar, BarBatch, Ctx, Descriptor, Fill, HostApi, InferenceError, Init, InitContext, InstrumentId,
    Intent, KvError, LogLevel, ModelInfo, OrderView, Plugin, Position, Quote, Roles, StopDecision, StopPolicy,
    Strategy, Timestamp,
};

pub use crate::bindings::exports::stratbox::plugin::{anomaly_detector, lifecycle, stop_policy, strategy};

/// The plugin instance of a component (wasm is single-threaded: one per component).
pub type Slot<P> = LocalKey<RefCell<Option<P>>>;

/// [`HostApi`] over the component's imports.
pub struct WasmHost;

impl HostApi for WasmHost {
    fn log(&mut self, level: LogLevel, message: &str) {
        log::log(level, message)
    }
    fn now(&mut self) -> Timestamp {
        clock::now()
    }
    fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }
    fn kv_set(&mut self, key: &str, value: &[u8]) -> Result<(), KvError> {
        kv::set(key, value)
    }
    fn kv_delete(&mut self, key: &str) -> Result<(), KvError> {
        kv::delete(key)
    }
    fn positions(&mut self) -> Vec<Position> {
        portfolio::positions()
    }
    fn position(&mut self, instrument: InstrumentId) -> Option<Position> {
        portfolio::position_of(instrument)
    }
    fn open_orders(&mut self) -> Vec<OrderView> {
        portfolio::open_orders()
    }
    fn history(&mut self, instrument: InstrumentId, period_secs: u32, count: u32) -> Vec<Bar> {
        market::history(instrument, period_secs, count)
    }
    fn resolve_model(&mut self, name: &str) -> Result<ModelInfo, InferenceError> {
        inference::resolve(name)
    }
    fn predict(&mut self, handle: u32, rows: &[f32]) -> Result<Vec<f32>, InferenceError> {
        inference::predict(handle, rows)
    }
}

/// Panics abort the instance (a trap the host quarantines); log the message
/// first so the operator reads why.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::log(LogLevel::Error, &format!("panic: {info}"));
    }));
}

/// Role flag for a role name of `export_plugin!`.
pub const STRATEGY: Roles = Roles::STRATEGY;
/// Role flag for a role name of `export_plugin!`.
pub const STOP_POLICY: Roles = Roles::STOP_POLICY;
/// Role flag for a role name of `export_plugin!`.
pub const ANOMALY_DETECTOR: Roles = Roles::ANOMALY_DETECTOR;

pub fn describe<P: Plugin>(roles: Roles) -> Descriptor {
    P::describe().into_descriptor(roles)
}

pub fn init<P: Plugin>(slot: &'static Slot<P>, context: InitContext) -> Result<(), String> {
    install_panic_hook();
    let plugin = P::init(&mut Ctx::new(&mut WasmHost), &Init::from(context))?;
    slot.with(|s| *s.borrow_mut() = Some(plugin));
    Ok(())
}

/// Runs `f` on the initialised plugin.
pub fn with<P: Plugin, R>(slot: &'static Slot<P>, f: impl FnOnce(&mut P, &mut Ctx<'_>) -> R) -> R {
    slot.with(|s| {
        let mut guard = s.borrow_mut();
        let plugin = guard.as_mut().expect("stratbox: event delivered before init");
        f(plugin, &mut Ctx::new(&mut WasmHost))
    })
}

pub fn export_state<P: Plugin>(slot: &'static Slot<P>) -> Vec<u8> {
    with(slot, |p, _| p.export_state())
}

pub fn import_state<P: Plugin>(slot: &'static Slot<P>, state: Vec<u8>) -> Result<(), String> {
    with(slot, |p, ctx| p.import_state(ctx, &state))
}

thread_local! {
    // Reused across calls: no allocation per event once warmed up.
    static OUT: RefCell<Vec<Intent>> = const { RefCell::new(Vec::new()) };
    static BARS: RefCell<Vec<Bar>> = const { RefCell::new(Vec::new()) };
}

/// Runs a strategy handler, then submits what it pushed through the `orders` import.
fn intents<P: Plugin>(slot: &'static Slot<P>, f: impl FnOnce(&mut P, &mut Ctx<'_>, &mut Vec<Intent>)) {
    OUT.with(|out| {
        let mut out = out.borrow_mut();
        with(slot, |p, ctx| f(p, ctx, &mut out));
        for intent in out.drain(..) {
            orders::submit(intent);
        }
    })
}

/// Runs `f` on the batch's bars, unpacked into a reused buffer.
fn with_bars<R>(batch: &BarBatch, f: impl FnOnce(&[Bar]) -> R) -> R {
    BARS.with(|bars| {
        let mut bars = bars.borrow_mut();
        bars.clear();
        bars.extend(batch.iter());
        f(&bars)
    })
}

pub fn on_bar<P: Strategy>(slot: &'static Slot<P>, bar: Bar) {
    intents(slot, |p, ctx, out| p.on_bar(ctx, &bar, out))
}
pub fn on_bars<P: Strategy>(slot: &'static Slot<P>, batch: BarBatch) {
    with_bars(&batch, |bars| intents(slot, |p, ctx, out| p.on_bars(ctx, bars, out)))
}
pub fn on_quote<P: Strategy>(slot: &'static Slot<P>, quote: Quote) {
    intents(slot, |p, ctx, out| p.on_quote(ctx, &quote, out))
}
pub fn on_fill<P: Strategy>(slot: &'static Slot<P>, fill: Fill) {
    intents(slot, |p, ctx, out| p.on_fill(ctx, &fill, out))
}
pub fn on_timer<P: Strategy>(slot: &'static Slot<P>, now: Timestamp) {
    intents(slot, |p, ctx, out| p.on_timer(ctx, now, out))
}
pub fn stop_on_bar<P: StopPolicy>(slot: &'static Slot<P>, bar: Bar, position: Position) -> Vec<StopDecision> {
    with(slot, |p, ctx| {
        let mut out = Vec::new();
        p.on_position_bar(ctx, &bar, &position, &mut out);
        out
    })
}
pub fn observe_bars<P: AnomalyDetector>(slot: &'static Slot<P>, batch: BarBatch) -> Option<Alarm> {
    with_bars(&batch, |bars| with(slot, |p, ctx| p.observe_bars(ctx, bars)))
}
pub fn observe_quote<P: AnomalyDetector>(slot: &'static Slot<P>, quote: Quote) -> Option<Alarm> {
    with(slot, |p, ctx| p.observe_quote(ctx, &quote))
}

/// Exports a plugin type as a Stratbox component.
///
/// `roles` lists the traits the type implements, among `strategy`,
/// `stop_policy` and `anomaly_detector`; the macro reports them to the host in
/// the descriptor and answers the other roles' calls with nothing. Outside
/// wasm the macro expands to nothing, so the crate also tests natively.
///
/// ```ignore
/// stratbox_sdk::export_plugin!(SmaCross, roles: [strategy]);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty, roles: [$($role:ident),+ $(,)?]) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            ::std::thread_local! {
                static __STRATBOX_PLUGIN: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            struct __StratboxComponent;
            impl $crate::__rt::lifecycle::Guest for __StratboxComponent {
                fn describe() -> $crate::Descriptor {
                    $crate::__rt::describe::<$plugin>($crate::Roles::empty() $(| $crate::__role_flag!($role))+)
                }
                fn init(context: $crate::InitContext) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__rt::init::<$plugin>(&__STRATBOX_PLUGIN, context)
                }
                fn export_state() -> ::std::vec::Vec<u8> {
                    $crate::__rt::export_state::<$plugin>(&__STRATBOX_PLUGIN)
                }
                fn import_state(state: ::std::vec::Vec<u8>) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__rt::import_state::<$plugin>(&__STRATBOX_PLUGIN, state)
                }
            }
            $crate::__role_impls!(__StratboxComponent, $plugin, __STRATBOX_PLUGIN,
                [strategy: no, stop_policy: no, anomaly_detector: no] $(, $role)+);
            $crate::bindings::__export_bindings!(__StratboxComponent with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __role_flag {
    (strategy) => { $crate::__rt::STRATEGY };
    (stop_policy) => { $crate::__rt::STOP_POLICY };
    (anomaly_detector) => { $crate::__rt::ANOMALY_DETECTOR };
    ($other:ident) => {
        ::core::compile_error!(::core::concat!("unknown plugin role `", ::core::stringify!($other),
            "`: expected strategy, stop_policy or anomaly_detector"))
    };
}

/// Marks each listed role `yes`, then emits one `Guest` impl per WIT role interface.
#[doc(hidden)]
#[macro_export]
macro_rules! __role_impls {
    ($c:ident, $p:ty, $slot:ident, [strategy: $s:ident, stop_policy: $t:ident, anomaly_detector: $a:ident], strategy $(, $rest:ident)*) => {
        $crate::__role_impls!($c, $p, $slot, [strategy: yes, stop_policy: $t, anomaly_detector: $a] $(, $rest)*);
    };
    ($c:ident, $p:ty, $slot:ident, [strategy: $s:ident, stop_policy: $t:ident, anomaly_detector: $a:ident], stop_policy $(, $rest:ident)*) => {
        $crate::__role_impls!($c, $p, $slot, [strategy: $s, stop_policy: yes, anomaly_detector: $a] $(, $rest)*);
    };
    ($c:ident, $p:ty, $slot:ident, [strategy: $s:ident, stop_policy: $t:ident, anomaly_detector: $a:ident], anomaly_detector $(, $rest:ident)*) => {
        $crate::__role_impls!($c, $p, $slot, [strategy: $s, stop_policy: $t, anomaly_detector: yes] $(, $rest)*);
    };
    ($c:ident, $p:ty, $slot:ident, [strategy: $s:ident, stop_policy: $t:ident, anomaly_detector: $a:ident], $other:ident $(, $rest:ident)*) => {
        $crate::__role_flag!($other);
    };
    ($c:ident, $p:ty, $slot:ident, [strategy: $s:ident, stop_policy: $t:ident, anomaly_detector: $a:ident]) => {
        $crate::__strategy_impl!($s, $c, $p, $slot);
        $crate::__stop_policy_impl!($t, $c, $p, $slot);
        $crate::__anomaly_detector_impl!($a, $c, $p, $slot);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __strategy_impl {
    (yes, $c:ident, $p:ty, $slot:ident) => {
        impl $crate::__rt::strategy::Guest for $c {
            fn on_bar(bar: $crate::Bar) { $crate::__rt::on_bar::<$p>(&$slot, bar) }
            fn on_bars(bars: $crate::BarBatch) { $crate::__rt::on_bars::<$p>(&$slot, bars) }
            fn on_quote(quote: $crate::Quote) { $crate::__rt::on_quote::<$p>(&$slot, quote) }
            fn on_fill(fill: $crate::Fill) { $crate::__rt::on_fill::<$p>(&$slot, fill) }
            fn on_timer(now: $crate::Timestamp) { $crate::__rt::on_timer::<$p>(&$slot, now) }
        }
    };
    (no, $c:ident, $p:ty, $slot:ident) => {
        impl $crate::__rt::strategy::Guest for $c {
            fn on_bar(_: $crate::Bar) {}
            fn on_bars(_: $crate::BarBatch) {}
            fn on_quote(_: $crate::Quote) {}
            fn on_fill(_: $crate::Fill) {}
            fn on_timer(_: $crate::Timestamp) {}
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __stop_policy_impl {
    (yes, $c:ident, $p:ty, $slot:ident) => {
        impl $crate::__rt::stop_policy::Guest for $c {
            fn on_bar(bar: $crate::Bar, position: $crate::Position) -> ::std::vec::Vec<$crate::StopDecision> {
                $crate::__rt::stop_on_bar::<$p>(&$slot, bar, position)
            }
        }
    };
    (no, $c:ident, $p:ty, $slot:ident) => {
        impl $crate::__rt::stop_policy::Guest for $c {
            fn on_bar(_: $crate::Bar, _: $crate::Position) -> ::std::vec::Vec<$crate::StopDecision> { ::std::vec::Vec::new() }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __anomaly_detector_impl {
    (yes, $c:ident, $p:ty, $slot:ident) => {
        impl $crate::__rt::anomaly_detector::Guest for $c {
            fn observe_bars(bars: $crate::BarBatch) -> ::core::option::Option<$crate::Alarm> {
                $crate::__rt::observe_bars::<$p>(&$slot, bars)
            }
            fn observe_quote(quote: $crate::Quote) -> ::core::option::Option<$crate::Alarm> {
                $crate::__rt::observe_quote::<$p>(&$slot, quote)
            }
        }
    };
    (no, $c:ident, $p:ty, $slot:ident) => {
        impl $crate::__rt::anomaly_detector::Guest for $c {
            fn observe_bars(_: $crate::BarBatch) -> ::core::option::Option<$crate::Alarm> { ::core::option::Option::None }
            fn observe_quote(_: $crate::Quote) -> ::core::option::Option<$crate::Alarm> { ::core::option::Option::None }
        }
    };
}
