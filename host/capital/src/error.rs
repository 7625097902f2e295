//! Capital.com's `errorCode`s as a typed enum, and the client's errors.
//!
//! Codes are the ones of `capital-com-api.md` and the Postman collection;
//! a code we have never seen keeps its text in [`ApiCode::Other`]. Some codes
//! carry a value after a colon (`error.invalid.stoploss.minvalue: 17.146`),
//! kept in the variant.

use std::time::Duration;

/// One `errorCode` of the API.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCode {
    // Session and authentication.
    NullApiKey,
    InvalidDetails,
    InvalidSessionToken,
    NullClientToken,
    ClientTokenMissing,
    InvalidAccountId,
    TooManyRequests,
    // Market data.
    NullSearchTerm,
    NullEpic,
    NotFoundEpic,
    InvalidLimit,
    InvalidResolution,
    InvalidMax,
    InvalidMaxDateRange,
    InvalidDateRange,
    InvalidFrom,
    InvalidTo,
    PricesNotFound,
    // Trading.
    StopLossMin(Option<f64>),
    StopLossMax(Option<f64>),
    TakeProfitMin(Option<f64>),
    TakeProfitMax(Option<f64>),
    InvalidSize,
    InvalidSizeMax,
    StopPrice,
    Margin,
    NotFoundDealReference,
    NotFoundDealId,
    GoodTillDateNotInFuture,
    InvalidLeverage,
    // Watchlists.
    NotFoundWatchlist,
    InvalidWatchlist,
    WatchlistName,
    Other(String),
}

const CODES: &[(&str, ApiCode)] = &[
    ("error.null.api.key", ApiCode::NullApiKey),
    ("error.invalid.details", ApiCode::InvalidDetails),
    ("error.invalid.session.token", ApiCode::InvalidSessionToken),
    ("error.null.client.token", ApiCode::NullClientToken),
    ("error.security.client-token-missing", ApiCode::ClientTokenMissing),
    ("error.invalid.accountId", ApiCode::InvalidAccountId),
    ("error.too-many.requests", ApiCode::TooManyRequests),
    ("error.null.searchTerm", ApiCode::NullSearchTerm),
    ("error.null.epic", ApiCode::NullEpic),
    ("error.not-found.epic", ApiCode::NotFoundEpic),
    ("error.invalid.limit", ApiCode::InvalidLimit),
    ("error.invalid.resolution", ApiCode::InvalidResolution),
    ("error.invalid.max", ApiCode::InvalidMax),
    ("error.invalid.max.daterange", ApiCode::InvalidMaxDateRange),
    ("error.invalid.daterange", ApiCode::InvalidDateRange),
    ("error.invalid.from", ApiCode::InvalidFrom),
    ("error.invalid.to", ApiCode::InvalidTo),
    ("error.prices.not-found", ApiCode::PricesNotFound),
    ("error.invalid.size", ApiCode::InvalidSize),
    ("error.invalid.size.maxvalue", ApiCode::InvalidSizeMax),
    ("error.validation.stop.price", ApiCode::StopPrice),
    ("error.validation.margin", ApiCode::Margin),
    ("error.not-found.dealReference", ApiCode::NotFoundDealReference),
    ("error.not-found.dealId", ApiCode::NotFoundDealId),
    ("error.not-in-future.goodTillDate", ApiCode::GoodTillDateNotInFuture),
    ("error.invalid.leverage.value", ApiCode::InvalidLeverage),
    ("error.not-found.watchlist", ApiCode::NotFoundWatchlist),
    ("error.invalid.watchlist", ApiCode::InvalidWatchlist),
    ("error.size.createwatchlistrequest.name", ApiCode::WatchlistName),
];

const VALUED: &[&str] =
    &["error.invalid.stoploss.minvalue", "error.invalid.stoploss.maxvalue", "error.invalid.takeprofit.minvalue", "error.invalid.takeprofit.maxvalue"];

impl ApiCode {
    /// Reads an `errorCode`, with its `: value` suffix if any.
    pub fn parse(text: &str) -> Self {
        let (code, value) = match text.split_once(':') {
            Some((c, v)) => (c.trim(), v.trim().parse::<f64>().ok()),
            None => (text.trim(), None),
        };
        if let Some(k) = VALUED.iter().position(|v| *v == code) {
            return [ApiCode::StopLossMin, ApiCode::StopLossMax, ApiCode::TakeProfitMin, ApiCode::TakeProfitMax][k](value);
        }
        CODES.iter().find(|(c, _)| *c == code).map_or_else(|| ApiCode::Other(text.to_owned()), |(_, v)| v.clone())
    }

    /// The wire text (the mock sends it).
    pub fn code(&self) -> String {
        let valued = |k: usize, v: &Option<f64>| match v {
            Some(v) => format!("{}: {v}", VALUED[k]),
            None => VALUED[k].to_owned(),
        };
        match self {
            ApiCode::StopLossMin(v) => valued(0, v),
            ApiCode::StopLossMax(v) => valued(1, v),
            ApiCode::TakeProfitMin(v) => valued(2, v),
            ApiCode::TakeProfitMax(v) => valued(3, v),
            ApiCode::Other(s) => s.clone(),
            known => CODES.iter().find(|(_, v)| v == known).map(|(c, _)| (*c).to_owned()).expect("every unvalued code is in CODES"),
        }
    }

    /// The reply carried an `errorCode` (known to this client or not, it is
    /// the API's answer), rather than a body without one (a gateway's page).
    pub fn is_from_the_api(&self) -> bool {
        !matches!(self, ApiCode::Other(s) if !s.starts_with("error."))
    }

    /// The session is gone: log in again and retry.
    pub fn is_session_expired(&self) -> bool {
        matches!(self, ApiCode::InvalidSessionToken | ApiCode::NullClientToken | ApiCode::ClientTokenMissing)
    }
}

impl std::fmt::Display for ApiCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CapitalError {
    /// The API answered with an error code.
    #[error("Capital.com {endpoint}: HTTP {status}, {code}")]
    Api { endpoint: String, status: u16, code: ApiCode },
    /// Still rate-limited (HTTP 429) after every retry.
    #[error("Capital.com {endpoint}: still rate-limited (429) after {attempts} attempts")]
    RateLimited { endpoint: String, attempts: u32 },
    #[error("Capital.com {endpoint}: {source}")]
    Http { endpoint: String, source: reqwest::Error },
    /// The connection failed or broke before a reply came.
    #[error("Capital.com {endpoint}: {why}")]
    Transport { endpoint: String, why: String },
    /// A 2xx body or a frame that does not have the documented shape.
    #[error("Capital.com {endpoint}: unexpected response ({why})")]
    Protocol { endpoint: String, why: String },
    #[error("Capital.com login: {0}")]
    Encryption(String),
    #[error("Capital.com stream: {0}")]
    Stream(String),
    #[error("Capital.com {endpoint}: no answer within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
    /// A base URL the client will not send the API key to.
    #[error("Capital.com base URL `{url}`: {why}")]
    BaseUrl { url: String, why: String },
}

impl CapitalError {
    /// The broker said, in its documented terms, that it did not take the
    /// request: a 4xx with an `errorCode`, or still rate-limited (429 is
    /// answered before anything is done). Anything else (a 5xx, a reply
    /// without a code, a timeout, a broken connection, a 2xx that does not
    /// parse) may come after the deal was made: its outcome is unknown.
    pub fn is_refusal(&self) -> bool {
        match self {
            CapitalError::Api { status, code, .. } => (400..500).contains(status) && code.is_from_the_api(),
            CapitalError::RateLimited { .. } => true,
            _ => false,
        }
    }
}

impl CapitalError {
    /// The typed code, if the API gave one.
    pub fn code(&self) -> Option<&ApiCode> {
        match self {
            CapitalError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_values_are_kept() {
        for (text, code) in CODES {
            assert_eq!(&ApiCode::parse(text), code);
            assert_eq!(code.code(), *text);
        }
        assert_eq!(ApiCode::parse("error.invalid.stoploss.minvalue: 17.146"), ApiCode::StopLossMin(Some(17.146)));
        assert_eq!(ApiCode::parse("error.invalid.takeprofit.maxvalue"), ApiCode::TakeProfitMax(None));
        assert_eq!(ApiCode::StopLossMin(Some(17.146)).code(), "error.invalid.stoploss.minvalue: 17.146");
        assert_eq!(ApiCode::parse("error.brand.new"), ApiCode::Other("error.brand.new".into()));
        assert!(ApiCode::parse("error.invalid.session.token").is_session_expired());
        assert!(!ApiCode::parse("error.invalid.details").is_session_expired());
    }
}
