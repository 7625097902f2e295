//! The Capital.com wire format: the JSON shapes of the REST and WebSocket
//! subset we use, shared by the client and the mock server so both speak
//! exactly the same language (field names as in the Postman collection's
//! example responses; optional fields are omitted, never `null`).

use serde::{Deserialize, Serialize};

/// `{"errorCode": "..."}`: the body of every 4xx.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error_code: String,
}

/// `GET /time`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: i64,
}

/// `GET /ping`, `DELETE /session`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
}

/// `GET /session/encryptionKey`: a base64 DER SubjectPublicKeyInfo RSA key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionKey {
    pub encryption_key: String,
    pub time_stamp: i64,
}

/// `POST /session` body. `password` is the API key's password, or its
/// encrypted form when `encrypted_password` is true.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRequest {
    pub identifier: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted_password: bool,
}

impl std::fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRequest").field("encrypted_password", &self.encrypted_password).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub balance: f64,
    pub deposit: f64,
    pub profit_loss: f64,
    pub available: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountSummary {
    pub account_id: String,
    pub account_name: String,
    pub preferred: bool,
    pub account_type: String,
}

/// `POST /session` 200 body (the tokens come in the `CST` and
/// `X-SECURITY-TOKEN` headers).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    pub account_type: String,
    pub account_info: AccountInfo,
    pub currency_iso_code: String,
    pub currency_symbol: String,
    pub current_account_id: String,
    pub streaming_host: String,
    pub accounts: Vec<AccountSummary>,
    pub client_id: String,
    pub timezone_offset: i32,
    pub has_active_demo_accounts: bool,
    pub has_active_live_accounts: bool,
    pub trailing_stops_enabled: bool,
}

/// `GET /session`: the session's account and its time zone (confirm
/// `date`s are in it: hours ahead of UTC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionDetails {
    pub client_id: String,
    pub account_id: String,
    pub timezone_offset: i32,
}

/// A bid/ask pair of one OHLC field in `GET /prices`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct BidAsk {
    pub bid: f64,
    pub ask: f64,
}

/// One bar of `GET /prices/{epic}`; `snapshotTimeUTC` is the bar's open time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PriceBar {
    pub snapshot_time: String,
    #[serde(rename = "snapshotTimeUTC")]
    pub snapshot_time_utc: String,
    pub open_price: BidAsk,
    pub close_price: BidAsk,
    pub high_price: BidAsk,
    pub low_price: BidAsk,
    pub last_traded_volume: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Prices {
    pub prices: Vec<PriceBar>,
    pub instrument_type: String,
}

/// `{"unit": "POINTS"|"PERCENTAGE", "value": n}` of the dealing rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Distance {
    pub unit: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MarketInstrument {
    pub epic: String,
    pub symbol: String,
    pub name: String,
    pub expiry: String,
    pub lot_size: f64,
    #[serde(rename = "type")]
    pub instrument_type: String,
    pub currency: String,
    pub streaming_prices_available: bool,
    pub opening_hours: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DealingRules {
    pub min_step_distance: Distance,
    pub min_deal_size: Distance,
    pub max_deal_size: Distance,
    pub min_size_increment: Distance,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MarketSnapshot {
    pub market_status: String,
    pub bid: f64,
    pub offer: f64,
    pub high: f64,
    pub low: f64,
    pub update_time: String,
    pub delay_time: i64,
    pub decimal_places_factor: i32,
    pub scaling_factor: i32,
}

/// `GET /markets/{epic}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MarketDetails {
    pub instrument: MarketInstrument,
    pub dealing_rules: DealingRules,
    pub snapshot: MarketSnapshot,
}

/// A client frame on the stream: tokens travel in every frame.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientFrame {
    pub destination: String,
    /// A string from us; the official web page uses the number `1`, so both are read.
    #[serde(deserialize_with = "string_or_number")]
    pub correlation_id: String,
    pub cst: String,
    pub security_token: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub payload: serde_json::Value,
}

impl std::fmt::Debug for ClientFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFrame")
            .field("destination", &self.destination)
            .field("correlation_id", &self.correlation_id)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("correlationId must be a string or a number, not {other}"))),
    }
}

/// A server frame: a reply (with the request's correlation id) or a push.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerFrame {
    pub status: String,
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub payload: serde_json::Value,
    /// Some servers put the error code at the top level of an error frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// `destination: "quote"` push.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuotePush<'a> {
    pub epic: &'a str,
    pub product: &'a str,
    pub bid: f64,
    pub bid_qty: f64,
    pub ofr: f64,
    pub ofr_qty: f64,
    pub timestamp: i64,
}

/// `destination: "ohlc.event"` push: one side (`priceType` bid or ask) of a
/// closed bar opened at `t` (ms). No volume on the stream.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OhlcPush<'a> {
    pub resolution: &'a str,
    pub epic: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub price_type: &'a str,
    pub t: i64,
    pub h: f64,
    pub l: f64,
    pub o: f64,
    pub c: f64,
}

// ---- Trading (section 5 of the reference) --------------------------------

/// `POST /positions` and, with `level` and `order_type`, `POST /workingorders`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DealRequest {
    pub epic: String,
    /// `BUY` or `SELL`.
    pub direction: String,
    pub size: f64,
    /// Working orders only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    /// Working orders only: `LIMIT` or `STOP`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// Working orders only; absent means good till cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_till_date: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guaranteed_stop: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trailing_stop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_level: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_distance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit_level: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit_distance: Option<f64>,
}

/// `PUT /positions/{dealId}` and `PUT /workingorders/{dealId}`: only what is sent changes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AmendRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good_till_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_level: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit_level: Option<f64>,
}

/// What every dealing call returns: `o_…` for orders, `p_…` for positions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DealReference {
    pub deal_reference: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AffectedDeal {
    pub deal_id: String,
    /// OPENED, AMENDED, DELETED, FULLY_CLOSED, PARTIALLY_CLOSED.
    pub status: String,
}

/// `GET /confirms/{dealReference}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Confirm {
    pub date: String,
    /// OPEN, AMENDED, CLOSED, DELETED, PARTIALLY_CLOSED.
    pub status: String,
    /// ACCEPTED or REJECTED.
    pub deal_status: String,
    pub epic: String,
    pub deal_reference: String,
    pub deal_id: String,
    pub affected_deals: Vec<AffectedDeal>,
    pub level: f64,
    pub size: f64,
    pub direction: String,
    pub guaranteed_stop: bool,
    pub trailing_stop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_reason: Option<String>,
}

impl Confirm {
    pub fn accepted(&self) -> bool {
        self.deal_status == "ACCEPTED"
    }

    /// This confirm with its status, level, and its own deal as the one affected deal.
    pub fn settled(mut self, status: &str, level: f64, affected: &str) -> Self {
        (self.status, self.level) = (status.into(), level);
        self.affected_deals = vec![AffectedDeal { deal_id: self.deal_id.clone(), status: affected.into() }];
        self
    }
}

/// A market as `GET /markets`, navigation leaves, watchlists, positions and working orders show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MarketSummary {
    pub epic: String,
    #[serde(default)]
    pub symbol: String,
    pub instrument_name: String,
    /// COMMODITIES, CURRENCIES, INDICES, SHARES, CRYPTOCURRENCIES.
    #[serde(default)]
    pub instrument_type: String,
    pub expiry: String,
    pub market_status: String,
    pub lot_size: f64,
    pub bid: f64,
    pub offer: f64,
    #[serde(default)]
    pub high: f64,
    #[serde(default)]
    pub low: f64,
    #[serde(default)]
    pub net_change: f64,
    #[serde(default)]
    pub percentage_change: f64,
    #[serde(default)]
    pub update_time: String,
    #[serde(rename = "updateTimeUTC", alias = "updateTimeUtc", default)]
    pub update_time_utc: String,
    #[serde(default)]
    pub delay_time: i64,
    pub streaming_prices_available: bool,
    #[serde(default)]
    pub scaling_factor: i32,
    #[serde(default)]
    pub market_modes: Vec<String>,
    #[serde(default)]
    pub pip_position: i32,
    #[serde(default)]
    pub tick_size: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PositionData {
    pub contract_size: f64,
    pub created_date: String,
    #[serde(rename = "createdDateUTC")]
    pub created_date_utc: String,
    pub deal_id: String,
    pub deal_reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_order_id: Option<String>,
    pub size: f64,
    pub leverage: f64,
    pub upl: f64,
    pub direction: String,
    pub level: f64,
    pub currency: String,
    pub guaranteed_stop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_level: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profit_level: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpenPosition {
    pub position: PositionData,
    pub market: MarketSummary,
}

/// `GET /positions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Positions {
    pub positions: Vec<OpenPosition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkingOrderData {
    pub deal_id: String,
    pub direction: String,
    pub epic: String,
    pub order_size: f64,
    pub order_level: f64,
    /// GOOD_TILL_CANCELLED or GOOD_TILL_DATE.
    pub time_in_force: String,
    #[serde(rename = "goodTillDateUTC", default, skip_serializing_if = "Option::is_none")]
    pub good_till_date_utc: Option<String>,
    pub created_date: String,
    #[serde(rename = "createdDateUTC")]
    pub created_date_utc: String,
    pub guaranteed_stop: bool,
    /// LIMIT or STOP.
    pub order_type: String,
    pub currency_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkingOrder {
    pub working_order_data: WorkingOrderData,
    pub market_data: MarketSummary,
}

/// `GET /workingorders`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkingOrders {
    pub working_orders: Vec<WorkingOrder>,
}

/// `GET /accounts/preferences` (leverages left out: the host does not change them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    pub hedging_mode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leverages: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ActivityDetails {
    pub deal_reference: String,
    pub market_name: String,
    pub currency: String,
    pub size: f64,
    pub direction: String,
    pub level: f64,
    pub guaranteed_stop: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub date: String,
    #[serde(rename = "dateUTC")]
    pub date_utc: String,
    pub epic: String,
    pub deal_id: String,
    /// CLOSE_OUT, DEALER, SL, SYSTEM, TP, USER.
    pub source: String,
    /// POSITION, WORKING_ORDER, EDIT_STOP_AND_LIMIT, SWAP, SYSTEM.
    #[serde(rename = "type")]
    pub activity_type: String,
    /// ACCEPTED, CREATED, EXECUTED, EXPIRED, REJECTED, CANCELLED, ...
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ActivityDetails>,
}

/// `GET /history/activity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Activities {
    pub activities: Vec<Activity>,
}

/// One account of `GET /accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub account_id: String,
    pub account_name: String,
    /// ENABLED, DISABLED, SUSPENDED_FROM_DEALING.
    pub status: String,
    /// CFD, PHYSICAL, SPREADBET.
    pub account_type: String,
    pub preferred: bool,
    pub balance: AccountInfo,
    pub currency: String,
    /// In the reference, not in every Postman sample.
    #[serde(default)]
    pub symbol: String,
}

/// `GET /accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Accounts {
    pub accounts: Vec<Account>,
}

/// `POST /accounts/topUp` body (demo accounts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopUp {
    pub amount: f64,
}

/// `POST /accounts/topUp` 200 body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopUpResult {
    pub successful: bool,
}

/// `PUT /session` body: switch the active account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SwitchAccount {
    pub account_id: String,
}

/// `PUT /session` 200 body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccountSwitched {
    pub trailing_stops_enabled: bool,
    pub dealing_enabled: bool,
    pub has_active_demo_accounts: bool,
    pub has_active_live_accounts: bool,
}

/// One entry of `GET /history/transactions` (note `dateUtc`, and `size` as a string).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub date: String,
    pub date_utc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument_name: Option<String>,
    /// DEPOSIT, WITHDRAWAL, TRADE, SWAP, ...
    pub transaction_type: String,
    pub note: String,
    pub reference: String,
    pub size: String,
    pub currency: String,
    /// In the reference, not in every Postman sample; PROCESSED is the mock's only state.
    #[serde(default)]
    pub status: String,
}

/// `GET /history/transactions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transactions {
    pub transactions: Vec<Transaction>,
}

/// A node of the market navigation tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NavigationNode {
    pub id: String,
    pub name: String,
}

/// `GET /marketnavigation[/{nodeId}]`: sub-nodes, or at a leaf the markets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Navigation {
    pub nodes: Vec<NavigationNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markets: Option<Vec<MarketSummary>>,
}

/// Clients' long and short split of one market.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sentiment {
    pub market_id: String,
    pub long_position_percentage: f64,
    pub short_position_percentage: f64,
}

/// `GET /clientsentiment?marketIds=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sentiments {
    pub client_sentiments: Vec<Sentiment>,
}

/// One watchlist of `GET /watchlists`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Watchlist {
    pub id: String,
    pub name: String,
    pub editable: bool,
    pub deleteable: bool,
    pub default_system_watchlist: bool,
}

/// `GET /watchlists`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Watchlists {
    pub watchlists: Vec<Watchlist>,
}

/// `POST /watchlists` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewWatchlist {
    pub name: String,
    #[serde(default)]
    pub epics: Vec<String>,
}

/// `POST /watchlists` 200 body (`SUCCESS` or `SUCCESS_NOT_ALL_INSTRUMENTS_ADDED`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WatchlistCreated {
    pub watchlist_id: String,
    pub status: String,
}

/// `PUT /watchlists/{id}` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchlistEpic {
    pub epic: String,
}

/// `GET /watchlists/{id}` and a navigation leaf: market summaries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MarketList {
    pub markets: Vec<MarketSummary>,
}

/// Date-times in queries and responses: `YYYY-MM-DDTHH:MM:SS`, UTC, no zone.
pub fn format_query_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Date-times in responses: `YYYY-MM-DDTHH:MM:SS.fff`, no zone.
pub fn format_time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fff]` (UTC) as ms since the epoch.
pub fn parse_wire_time(s: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|t| t.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postman_examples_parse() {
        let quote = r#"{"status":"OK","destination":"quote","payload":{"epic":"OIL_CRUDE","product":"CFD","bid":93.87,"bidQty":4976.0,"ofr":93.9,"ofrQty":5000.0,"timestamp":1660297190627}}"#;
        let frame: ServerFrame = serde_json::from_str(quote).unwrap();
        let q = QuotePush::deserialize(&frame.payload).unwrap();
        assert_eq!((q.epic, q.ofr, q.timestamp), ("OIL_CRUDE", 93.9, 1_660_297_190_627));
        let ohlc = r#"{"status":"OK","destination":"ohlc.event","payload":{"resolution":"MINUTE_5","epic":"AAPL","type":"classic","priceType":"bid","t":1671714000000,"h":134.95,"l":134.85,"o":134.86,"c":134.88}}"#;
        let frame: ServerFrame = serde_json::from_str(ohlc).unwrap();
        let o = OhlcPush::deserialize(&frame.payload).unwrap();
        assert_eq!((o.resolution, o.price_type, o.t, o.c), ("MINUTE_5", "bid", 1_671_714_000_000, 134.88));
        let client = r#"{"destination":"ping","correlationId":1,"cst":"a","securityToken":"b"}"#;
        assert_eq!(serde_json::from_str::<ClientFrame>(client).unwrap().correlation_id, "1");
        let bar = r#"{"snapshotTime":"2022-04-06T15:18:00","snapshotTimeUTC":"2022-04-06T13:18:00","openPrice":{"bid":24.356,"ask":24.376},"closePrice":{"bid":24.378,"ask":24.398},"highPrice":{"bid":24.378,"ask":24.398},"lowPrice":{"bid":24.355,"ask":24.375},"lastTradedVolume":187}"#;
        let b: PriceBar = serde_json::from_str(bar).unwrap();
        assert_eq!(parse_wire_time(&b.snapshot_time_utc), Some(1_649_251_080_000));
        assert_eq!(format_query_time(1_649_251_080_000), "2022-04-06T13:18:00");
    }

    #[test]
    fn postman_trading_examples_parse() {
        let confirm = r#"{"date":"2022-04-06T07:32:19.193","status":"OPEN","reason":"SUCCESS","dealStatus":"ACCEPTED","epic":"SILVER","dealReference":"o_fcc7e6c0-c150-48aa-bf66-d6c6da071f1a","dealId":"006011e7-0001-54c4-0000-000080560043","affectedDeals":[{"dealId":"006011e7-0001-54c4-0000-000080560045","status":"OPENED"}],"level":24.285,"size":1,"direction":"BUY","guaranteedStop":false,"trailingStop":false}"#;
        let c: Confirm = serde_json::from_str(confirm).unwrap();
        assert!(c.accepted());
        assert_eq!((c.affected_deals[0].status.as_str(), c.level), ("OPENED", 24.285));
        let activity = r#"{"date":"2022-01-03T18:01:48.420","dateUTC":"2022-01-03T15:01:48.420","epic":"OIL_CRUDE","dealId":"00018509-0001-54c4-0000-0000803c0ec6","source":"CLOSE_OUT","type":"POSITION","status":"ACCEPTED","details":{"dealReference":"p_00018509-0001-54c4-0000-0000803c0ec6","marketName":"Crude Oil","currency":"USD","size":1,"direction":"SELL","level":75.2,"guaranteedStop":false}}"#;
        let a: Activity = serde_json::from_str(activity).unwrap();
        assert_eq!((a.activity_type.as_str(), a.details.unwrap().level), ("POSITION", 75.2));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let r = SessionRequest { identifier: "me@example.com".into(), password: "hunter2-secret".into(), encrypted_password: false };
        let f = ClientFrame { destination: "ping".into(), correlation_id: "1".into(), cst: "CSTSECRET".into(), security_token: "XSTSECRET".into(), payload: serde_json::Value::Null };
        let text = format!("{r:?} {f:?}");
        assert!(!text.contains("hunter2") && !text.contains("me@example") && !text.contains("SECRET"), "{text}");
    }
}
