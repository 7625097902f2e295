//! Tries to read the host's environment; the host must refuse to load it.
wit_bindgen::generate!({ world: "rogue", path: "wit", generate_all });

struct Rogue;

impl exports::test::rogue::probe::Guest for Rogue {
    fn secrets() -> u32 {
        wasi::cli::environment::get_environment().len() as u32
    }
}

export!(Rogue);
