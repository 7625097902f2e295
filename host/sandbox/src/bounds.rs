//! Length bounds on every string a plugin hands the host. A plugin's memory
//! cap bounds what one call can lift, but not what the host keeps, logs or
//! shows afterwards: a 2 MB alarm reason on every bar would otherwise reach
//! every log line and status view as it is.
//!
//! Identifiers (the plugin's name and version, parameter names) are refused
//! when too long, since a cut one could collide with another; prose
//! (descriptions, alarm reasons, error and panic messages) is cut at a
//! character boundary and marked with how much was left out.

use stratbox_contract::{Descriptor, ParamValue};

/// Longest plugin name, version or parameter name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest description, alarm reason, error or panic message kept, in bytes
/// (before the truncation marker).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most parameters one plugin may declare.
pub const MAX_PARAMS: usize = 256;

/// `text` cut to at most `max` bytes at a character boundary, with a marker
/// saying how many bytes were dropped.
pub fn bounded(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let kept = crate::host_state::truncate(&text, max);
    format!("{kept}… [truncated: {} more bytes]", text.len() - kept.len())
}

/// Checks identifiers and cuts prose in a descriptor; an error names the field.
pub fn bound_descriptor(mut d: Descriptor) -> Result<Descriptor, String> {
    let too_long = |what: &str, s: &str| format!("{what} is {} bytes long; at most {MAX_NAME_BYTES} are allowed", s.len());
    if d.name.len() > MAX_NAME_BYTES {
        return Err(too_long("its name", &d.name));
    }
    if d.version.len() > MAX_NAME_BYTES {
        return Err(too_long(&format!("the version of `{}`", d.name), &d.version));
    }
    if d.params.len() > MAX_PARAMS {
        return Err(format!("it declares {} parameters; at most {MAX_PARAMS} are allowed", d.params.len()));
    }
    d.description = bounded(d.description, MAX_TEXT_BYTES);
    for p in &mut d.params {
        if p.name.len() > MAX_NAME_BYTES {
            let start = crate::host_state::truncate(&p.name, 24);
            return Err(too_long(&format!("parameter name `{start}…`"), &p.name));
        }
        p.description = bounded(std::mem::take(&mut p.description), MAX_TEXT_BYTES);
        if let ParamValue::Text(t) = &mut p.default {
            *t = bounded(std::mem::take(t), MAX_TEXT_BYTES);
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratbox_contract::{ParamSpec, ResourceRequest, Roles};

    fn descriptor(name: &str, description: String, param: &str) -> Descriptor {
        Descriptor {
            name: name.into(),
            version: "1.0.0".into(),
            description,
            roles: Roles::STRATEGY,
            params: vec![ParamSpec { name: param.into(), description: "d".repeat(5000), default: ParamValue::Integer(1), min: None, max: None }],
            requested: ResourceRequest { memory_bytes: 0, fuel_per_callback: 0, max_intents_per_callback: 0 },
            timer_secs: 0,
        }
    }

    #[test]
    fn prose_is_cut_with_a_marker_at_a_character_boundary() {
        let cut = bounded("é".repeat(1000), 11);
        assert_eq!(cut, format!("{}… [truncated: 1990 more bytes]", "é".repeat(5)));
        assert_eq!(bounded("short".into(), 11), "short", "short text is untouched");
    }

    #[test]
    fn a_descriptor_keeps_bounded_prose_and_refuses_long_identifiers() {
        let d = bound_descriptor(descriptor("ok", "x".repeat(2 << 20), "fast")).unwrap();
        assert!(d.description.len() < MAX_TEXT_BYTES + 64, "{} bytes kept", d.description.len());
        assert!(d.description.ends_with(&format!("[truncated: {} more bytes]", (2 << 20) - MAX_TEXT_BYTES)));
        assert!(d.params[0].description.len() < MAX_TEXT_BYTES + 64);

        let e = bound_descriptor(descriptor(&"n".repeat(100), String::new(), "fast")).unwrap_err();
        assert_eq!(e, "its name is 100 bytes long; at most 64 are allowed");
        let e = bound_descriptor(descriptor("ok", String::new(), &"p".repeat(70))).unwrap_err();
        assert!(e.starts_with("parameter name `pppppppppppppppppppppppp…` is 70 bytes long"), "{e}");
    }
}
