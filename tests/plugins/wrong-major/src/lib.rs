//! Exports the lifecycle of contract 1.0.0; a 0.1 host must refuse it by version.
wit_bindgen::generate!({ world: "plugin", path: "wit" });

struct FromTheFuture;

impl exports::stratbox::plugin::lifecycle::Guest for FromTheFuture {
    fn describe() -> String {
        "built for stratbox:plugin@1.0.0".into()
    }
}

export!(FromTheFuture);
