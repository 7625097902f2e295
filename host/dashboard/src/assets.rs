//! The page and its scripts, embedded in the binary (`rust-embed`, from the
//! build script's `OUT_DIR/assets`). Scripts and styles are served under
//! content-hashed names, cacheable forever (`immutable`); `index.html`, which
//! names them, is revalidated by ETag. Text assets are gzipped once, on first
//! use, when the browser accepts it.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "$OUT_DIR/assets"]
struct Files;

/// One asset as served.
struct Asset {
    body: Vec<u8>,
    gzip: Option<Vec<u8>>,
    mime: &'static str,
    etag: String,
    immutable: bool,
}

struct Catalogue {
    /// By served path (`/`, `/assets/app.1a2b3c4d.js`, ...).
    by_path: HashMap<String, Asset>,
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

fn asset(body: Vec<u8>, name: &str, immutable: bool) -> Asset {
    use sha2::Digest;
    let etag = format!("\"{}\"", &hex::encode(sha2::Sha256::digest(&body))[..16]);
    let gzip = (body.len() > 1024 && !name.ends_with(".png")).then(|| gzip(&body));
    Asset { body, gzip, mime: mime(name), etag, immutable }
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut by_path = HashMap::new();
        let mut index = String::from_utf8(Files::get("index.html").expect("index.html is embedded").data.into_owned()).expect("index.html is UTF-8");
        for name in Files::iter() {
            if name == "index.html" {
                continue;
            }
            let file = Files::get(&name).expect("listed");
            let hash = hex::encode(&file.metadata.sha256_hash()[..4]);
            let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
            let hashed = format!("/assets/{stem}.{hash}.{ext}");
            // index.html names assets as `{{name}}`.
            index = index.replace(&format!("{{{{{name}}}}}"), &hashed);
            by_path.insert(hashed, asset(file.data.into_owned(), &name, true));
        }
        by_path.insert("/".into(), asset(index.into_bytes(), "index.html", false));
        Catalogue { by_path }
    })
}

/// The asset at `path`, honouring `If-None-Match` and `Accept-Encoding`.
pub fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(a) = catalogue().by_path.get(path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if a.immutable { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, HeaderValue::from_str(&a.etag).expect("hex"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag)) {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.mime));
    let accepts_gzip = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"));
    match &a.gzip {
        Some(z) if accepts_gzip => {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            (out, z.clone()).into_response()
        }
        _ => (out, a.body.clone()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_every_asset_by_its_hash_and_nothing_is_left_unresolved() {
        let index = String::from_utf8(catalogue().by_path["/"].body.clone()).unwrap();
        assert!(!index.contains("{{"), "an asset reference was not resolved: {index}");
        for name in ["app", "app", "lightweight-charts"] {
            assert!(index.contains(&format!("/assets/{name}.")), "{name} missing from index.html");
        }
        let js = catalogue().by_path.keys().find(|p| p.starts_with("/assets/lightweight-charts.") && p.ends_with(".js")).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, br"));
        let r = serve(js, &h);
        assert_eq!(r.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(r.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        let etag = r.headers()[header::ETAG].clone();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve(js, &h).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("/assets/nothing.js", &h).status(), StatusCode::NOT_FOUND);
    }
}
