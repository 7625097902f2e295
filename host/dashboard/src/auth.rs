//! Who may use the dashboard.
//!
//! - **Login**: with the one-time code of the link `stratbox run` prints (in
//!   the URL's fragment, which browsers never send to a server, so it reaches
//!   no log), or with the control token from `<data_dir>/control.json`. Either
//!   gives a session: a random id in an `HttpOnly`, `SameSite=Strict` cookie
//!   (`Secure` over TLS), kept in memory only.
//! - **Requests**: the session cookie, or `Authorization: Bearer <control token>`
//!   for scripts. A request that changes something must also carry an
//!   `Origin` equal to the dashboard's own when it has one (browsers always
//!   send it): a page from another site cannot send commands.
//! - **The stream**: a WebSocket cannot carry a header from a browser, so the
//!   page first fetches a ticket (single use, valid [`TICKET_TTL`]) with its
//!   session and opens the socket with it; the socket's `Origin` must be the
//!   dashboard's own (WebSockets are not covered by CORS: any page could
//!   otherwise open one to 127.0.0.1).
//! - **Host header**: only loopback names and the configured `hosts` are
//!   answered, so a rebinding DNS name cannot make the dashboard same-origin
//!   with an attacker's page.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use rand::RngCore;

pub const SESSION_COOKIE: &str = "stratbox_session";
/// A ticket opens one stream, within this.
pub const TICKET_TTL: Duration = Duration::from_secs(30);
/// The login link works once, within this.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// A session lasts this long.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions and tickets held at once (older ones go first).
const MAX_HELD: usize = 256;

pub fn random_hex() -> String {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    hex::encode(raw)
}

fn equal(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

pub struct Access {
    control_token: String,
    login_code: Mutex<Option<(String, Instant)>>,
    sessions: Mutex<HashMap<String, Instant>>,
    tickets: Mutex<HashMap<String, Instant>>,
    /// `host:port` names the dashboard answers to.
    hosts: Vec<String>,
    pub tls: bool,
}

impl Access {
    pub fn new(control_token: String, hosts: Vec<String>, tls: bool) -> Self {
        Self {
            control_token,
            login_code: Mutex::new(Some((random_hex(), Instant::now()))),
            sessions: Mutex::new(HashMap::new()),
            tickets: Mutex::new(HashMap::new()),
            hosts,
            tls,
        }
    }

    /// The one-time login code (for the link printed at start).
    pub fn login_code(&self) -> Option<String> {
        self.login_code.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(c, _)| c.clone())
    }

    fn insert(map: &Mutex<HashMap<String, Instant>>, ttl: Duration) -> String {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, t| t.elapsed() < ttl);
        if m.len() >= MAX_HELD
            && let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
        {
            m.remove(&oldest);
        }
        let id = random_hex();
        m.insert(id.clone(), Instant::now());
        id
    }

    /// A session for a login with `code` (the one-time code) or `token` (the control token).
    pub fn login(&self, code: Option<&str>, token: Option<&str>) -> Option<String> {
        let by_token = token.is_some_and(|t| equal(t, &self.control_token));
        let by_code = code.is_some_and(|c| {
            let mut slot = self.login_code.lock().unwrap_or_else(|e| e.into_inner());
            let ok = slot.as_ref().is_some_and(|(expected, at)| at.elapsed() < LOGIN_CODE_TTL && equal(c, expected));
            if ok {
                *slot = None; // once
            }
            ok
        });
        (by_token || by_code).then(|| Self::insert(&self.sessions, SESSION_TTL))
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    }

    /// The Set-Cookie value of a new session.
    pub fn session_cookie(&self, id: &str) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", SESSION_TTL.as_secs())
    }

    /// Whether the request carries a live session or the control token.
    pub fn authenticated(&self, headers: &HeaderMap) -> bool {
        let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| equal(b, &self.control_token)) {
            return true;
        }
        cookie(headers, SESSION_COOKIE).is_some_and(|id| self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&id).is_some_and(|t| t.elapsed() < SESSION_TTL))
    }

    pub fn ticket(&self) -> String {
        Self::insert(&self.tickets, TICKET_TTL)
    }

    /// Spends a ticket: `true` once, within its time.
    pub fn redeem(&self, ticket: &str) -> bool {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner()).remove(ticket).is_some_and(|t| t.elapsed() < TICKET_TTL)
    }

    /// The `Host` header, when it is one the dashboard answers to.
    pub fn known_host<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
        let name = match host.rsplit_once(':') {
            Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
            _ => host,
        };
        let loopback = matches!(name, "127.0.0.1" | "localhost" | "[::1]");
        (loopback || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))).then_some(host)
    }

    /// Whether `Origin` names this dashboard (scheme and the request's own host).
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let Some(host) = self.known_host(headers) else { return false };
        let scheme = if self.tls { "https" } else { "http" };
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).is_some_and(|o| o == format!("{scheme}://{host}"))
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_login_code_works_once_and_tickets_once() {
        let a = Access::new("tok".into(), vec![], false);
        let code = a.login_code().unwrap();
        assert!(a.login(Some("wrong"), None).is_none());
        let s = a.login(Some(&code), None).expect("the code logs in");
        assert!(a.login(Some(&code), None).is_none(), "only once");
        assert!(a.login_code().is_none());
        assert!(a.login(None, Some("tok")).is_some(), "the control token logs in");
        let h = headers(&[(header::COOKIE, &format!("theme=dark; {SESSION_COOKIE}={s}"))]);
        assert!(a.authenticated(&h));
        assert!(!a.authenticated(&headers(&[(header::COOKIE, &format!("{SESSION_COOKIE}=forged"))])));
        assert!(a.authenticated(&headers(&[(header::AUTHORIZATION, "Bearer tok")])));
        assert!(!a.authenticated(&headers(&[(header::AUTHORIZATION, "Bearer tok2")])));
        a.logout(&h);
        assert!(!a.authenticated(&h));
        let t = a.ticket();
        assert!(a.redeem(&t) && !a.redeem(&t));
    }

    #[test]
    fn only_known_hosts_and_the_same_origin_pass() {
        let a = Access::new("tok".into(), vec!["desk.example:8765".into()], false);
        let ok = headers(&[(header::HOST, "127.0.0.1:8765"), (header::ORIGIN, "http://127.0.0.1:8765")]);
        assert!(a.same_origin(&ok));
        assert!(!a.same_origin(&headers(&[(header::HOST, "127.0.0.1:8765"), (header::ORIGIN, "http://evil.example")])));
        assert!(!a.same_origin(&headers(&[(header::HOST, "127.0.0.1:8765")])), "no Origin is not the same origin");
        // DNS rebinding: the attacker's name resolving to loopback.
        assert!(a.known_host(&headers(&[(header::HOST, "evil.example:8765")])).is_none());
        assert!(a.same_origin(&headers(&[(header::HOST, "desk.example:8765"), (header::ORIGIN, "http://desk.example:8765")])));
        let tls = Access::new("tok".into(), vec![], true);
        assert!(!tls.same_origin(&ok), "over TLS the origin is https");
    }
}
