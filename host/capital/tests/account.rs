//! The mock's account and browsing endpoints, read as a third-party client
//! reads them: raw JSON with the field names of `capital-com-api.md`
//! (sections 2, 4, 5 and 6) and the Postman collection's error codes.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use stratbox_capital::{ApiCode, CallKind, CapitalCredentials, CapitalError, RestClient, RestConfig, wire};
use stratbox_capital_mock::{MockConfig, MockServer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn start() -> (MockServer, RestClient) {
    let config = MockConfig {
        epics: vec!["AAPL".into(), "GOLD".into(), "EURUSD".into()],
        start_ms: Some(chrono::Utc::now().timestamp_millis() - 86_400_000),
        ..MockConfig::default()
    };
    let mock = MockServer::start(config, "127.0.0.1:0").await.unwrap();
    let a = stratbox_capital_mock::MockAccount::default();
    let credentials = CapitalCredentials { api_key: a.api_key.clone(), identifier: a.identifier.clone(), password: a.password.clone() };
    let client = RestClient::new(RestConfig { base_url: mock.base_url(), ..RestConfig::default() }, credentials).unwrap();
    (mock, client)
}

async fn get(client: &RestClient, path: &str, query: &[(&str, &str)]) -> Result<Value, CapitalError> {
    let query: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, v.to_string())).collect();
    client.call(Method::GET, path, None::<&()>, &query, CallKind::General).await
}

async fn send(client: &RestClient, method: Method, path: &str, body: Option<Value>) -> Result<Value, CapitalError> {
    client.call(method, path, body.as_ref(), &[], CallKind::General).await
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// The error code and HTTP status of a refused call.
fn refused(r: Result<Value, CapitalError>) -> (u16, ApiCode) {
    match r {
        Err(CapitalError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn balance(v: &Value) -> f64 {
    v["accounts"][0]["balance"]["balance"].as_f64().unwrap()
}

#[test]
fn accounts_top_ups_switching_and_transactions_have_the_reference_shapes() {
    runtime().block_on(async {
        let (_mock, client) = start().await;
        let accounts = get(&client, "/accounts", &[]).await.unwrap();
        let a = &accounts["accounts"][0];
        assert_eq!(keys(a), ["accountId", "accountName", "accountType", "balance", "currency", "preferred", "status", "symbol"]);
        assert_eq!(keys(&a["balance"]), ["available", "balance", "deposit", "profitLoss"]);
        assert_eq!((a["status"].as_str(), a["accountType"].as_str(), a["preferred"].as_bool()), (Some("ENABLED"), Some("CFD"), Some(true)));
        assert_eq!(balance(&accounts), 10_000.0);
        let id = a["accountId"].as_str().unwrap().to_owned();

        // Demo top-ups: credited, capped at 100,000, refused outside +-400,000.
        assert_eq!(send(&client, Method::POST, "/accounts/topUp", Some(json!({"amount": 500}))).await.unwrap(), json!({"successful": true}));
        assert_eq!(balance(&get(&client, "/accounts", &[]).await.unwrap()), 10_500.0);
        send(&client, Method::POST, "/accounts/topUp", Some(json!({"amount": 300_000}))).await.unwrap();
        assert_eq!(balance(&get(&client, "/accounts", &[]).await.unwrap()), 100_000.0, "the demo cap");
        send(&client, Method::POST, "/accounts/topUp", Some(json!({"amount": 10}))).await.unwrap();
        assert_eq!(balance(&get(&client, "/accounts", &[]).await.unwrap()), 100_000.0, "nothing past the cap, and no withdrawal either");
        let (status, code) = refused(send(&client, Method::POST, "/accounts/topUp", Some(json!({"amount": 400_001}))).await);
        assert_eq!((status, code), (400, ApiCode::Other("error.invalid.amount".into())));

        // Switching: the one account is accepted, any other refused.
        let switched = send(&client, Method::PUT, "/session", Some(json!({"accountId": id}))).await.unwrap();
        assert_eq!(keys(&switched), ["dealingEnabled", "hasActiveDemoAccounts", "hasActiveLiveAccounts", "trailingStopsEnabled"]);
        let (status, code) = refused(send(&client, Method::PUT, "/session", Some(json!({"accountId": "nope"}))).await);
        assert_eq!((status, code), (400, ApiCode::InvalidAccountId));

        // A round trip realises its P&L into the balance, as a TRADE transaction.
        let deadline = Instant::now() + Duration::from_secs(10);
        let open = loop {
            let reference = client.open_position(&wire::DealRequest { epic: "GOLD".into(), direction: "BUY".into(), size: 2.0, ..Default::default() }).await.unwrap();
            let c = client.confirm(&reference).await.unwrap();
            if c.deal_status == "ACCEPTED" {
                break c;
            }
            assert!(Instant::now() < deadline, "the mock never quoted GOLD: {c:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let position = open.affected_deals[0].deal_id.clone();
        let during = get(&client, "/accounts", &[]).await.unwrap();
        let b = &during["accounts"][0]["balance"];
        assert!(b["profitLoss"].as_f64().unwrap() < 0.0, "bought at the offer, marked at the bid: {b}");
        assert!(b["available"].as_f64().unwrap() < b["balance"].as_f64().unwrap(), "margin is held: {b}");
        let close = client.confirm(&client.close_position(&position).await.unwrap()).await.unwrap();
        let pnl = (close.level - open.level) * 2.0;
        let after = balance(&get(&client, "/accounts", &[]).await.unwrap());
        assert!((after - (100_000.0 + pnl)).abs() < 0.011, "balance {after}, P&L {pnl}");

        let all = get(&client, "/history/transactions", &[("lastPeriod", "86400")]).await.unwrap();
        let list = all["transactions"].as_array().unwrap();
        assert_eq!(keys(&list[0]), ["currency", "date", "dateUtc", "note", "reference", "size", "status", "transactionType"], "no instrument on a deposit");
        let kinds: Vec<&str> = list.iter().map(|t| t["transactionType"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["DEPOSIT", "DEPOSIT", "DEPOSIT", "TRADE"], "the opening deposit, the two top-ups credited, the trade");
        let trade = list.last().unwrap();
        assert_eq!((trade["instrumentName"].as_str(), trade["size"].as_str()), (Some("GOLD"), Some(format!("{pnl:.2}").as_str())), "size is a string");
        let deposits = get(&client, "/history/transactions", &[("lastPeriod", "86400"), ("type", "DEPOSIT")]).await.unwrap();
        assert_eq!(deposits["transactions"].as_array().unwrap().len(), 3);
        assert_eq!(client.transactions_last(86_400).await.unwrap().len(), 4, "the typed read agrees");
        assert_eq!(refused(get(&client, "/history/transactions", &[("from", "1700000000")]).await), (400, ApiCode::InvalidFrom), "an epoch is not a date");
        assert_eq!(refused(get(&client, "/history/transactions", &[("lastPeriod", "0")]).await).0, 400);

        let typed = client.accounts().await.unwrap();
        assert_eq!((typed.len(), typed[0].balance.balance), (1, after));
    });
}

#[test]
fn navigation_sentiment_and_watchlists_have_the_reference_shapes() {
    runtime().block_on(async {
        let (_mock, client) = start().await;
        let top = get(&client, "/marketnavigation", &[]).await.unwrap();
        let nodes: Vec<&str> = top["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert_eq!(nodes, ["hierarchy_v1.shares_group", "hierarchy_v1.currencies_group", "hierarchy_v1.commodities_group"]);
        assert!(top.get("markets").is_none(), "a branch lists nodes only");
        let leaf = get(&client, "/marketnavigation/hierarchy_v1.commodities_group", &[]).await.unwrap();
        assert_eq!(leaf["nodes"], json!([]));
        assert_eq!(leaf["markets"][0]["epic"], "GOLD");
        assert_eq!(
            keys(&leaf["markets"][0]),
            [
                "bid", "delayTime", "epic", "expiry", "high", "instrumentName", "instrumentType", "lotSize", "low", "marketModes", "marketStatus",
                "netChange", "offer", "percentageChange", "pipPosition", "scalingFactor", "streamingPricesAvailable", "symbol", "tickSize",
                "updateTime", "updateTimeUTC"
            ],
            "a MarketSummary of the reference"
        );
        assert_eq!(leaf["markets"][0]["instrumentType"], "COMMODITIES");
        // GET /markets: no parameters list every market; searchTerm filters; an empty one is refused.
        let all = get(&client, "/markets", &[]).await.unwrap();
        let types: Vec<&str> = all["markets"].as_array().unwrap().iter().map(|m| m["instrumentType"].as_str().unwrap()).collect();
        assert_eq!(types, ["SHARES", "COMMODITIES", "CURRENCIES"]);
        assert_eq!(get(&client, "/markets", &[("searchTerm", "go")]).await.unwrap()["markets"][0]["epic"], "GOLD");
        assert_eq!(refused(get(&client, "/markets", &[("searchTerm", "")]).await), (400, ApiCode::NullSearchTerm));
        assert_eq!(refused(get(&client, "/marketnavigation/hierarchy_v1.shares_group", &[("limit", "0")]).await), (400, ApiCode::InvalidLimit));
        assert_eq!(refused(get(&client, "/marketnavigation/hierarchy_v1.nope", &[]).await).0, 404);

        let both = get(&client, "/clientsentiment", &[("marketIds", "AAPL,GOLD")]).await.unwrap();
        let s = both["clientSentiments"].as_array().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(keys(&s[0]), ["longPositionPercentage", "marketId", "shortPositionPercentage"]);
        let sum = s[1]["longPositionPercentage"].as_f64().unwrap() + s[1]["shortPositionPercentage"].as_f64().unwrap();
        assert!((sum - 100.0).abs() < 1e-9, "{sum}");
        assert_eq!(get(&client, "/clientsentiment/GOLD", &[]).await.unwrap(), s[1], "one market, the same split");
        assert_eq!(refused(get(&client, "/clientsentiment/NOPE", &[]).await), (404, ApiCode::NotFoundEpic));
        assert_eq!(refused(get(&client, "/clientsentiment", &[("marketIds", "AAPL,NOPE")]).await), (404, ApiCode::NotFoundEpic));

        let lists = get(&client, "/watchlists", &[]).await.unwrap();
        let system = &lists["watchlists"][0];
        assert_eq!(keys(system), ["defaultSystemWatchlist", "deleteable", "editable", "id", "name"]);
        assert_eq!((system["editable"].as_bool(), system["defaultSystemWatchlist"].as_bool()), (Some(false), Some(true)));
        let made = send(&client, Method::POST, "/watchlists", Some(json!({"name": "metals", "epics": ["GOLD", "NOPE"]}))).await.unwrap();
        assert_eq!(made["status"], "SUCCESS_NOT_ALL_INSTRUMENTS_ADDED");
        let id = made["watchlistId"].as_str().unwrap().to_owned();
        let (status, code) = refused(send(&client, Method::POST, "/watchlists", Some(json!({"name": "a name far longer than twenty"}))).await);
        assert_eq!((status, code), (400, ApiCode::WatchlistName));
        assert_eq!(send(&client, Method::PUT, &format!("/watchlists/{id}"), Some(json!({"epic": "AAPL"}))).await.unwrap(), json!({"status": "SUCCESS"}));
        assert_eq!(refused(send(&client, Method::PUT, &format!("/watchlists/{id}"), Some(json!({"epic": "NOPE"}))).await), (404, ApiCode::NotFoundEpic));
        let epics = |v: &Value| v["markets"].as_array().unwrap().iter().map(|m| m["epic"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        assert_eq!(epics(&get(&client, &format!("/watchlists/{id}"), &[]).await.unwrap()), ["GOLD", "AAPL"]);
        send(&client, Method::DELETE, &format!("/watchlists/{id}/GOLD"), None).await.unwrap();
        assert_eq!(epics(&get(&client, &format!("/watchlists/{id}"), &[]).await.unwrap()), ["AAPL"]);
        assert_eq!(refused(send(&client, Method::DELETE, &format!("/watchlists/{id}/GOLD"), None).await), (404, ApiCode::NotFoundEpic), "no longer in it");
        let system_id = system["id"].as_str().unwrap();
        assert_eq!(refused(send(&client, Method::DELETE, &format!("/watchlists/{system_id}"), None).await).0, 400, "the system list stays");
        assert_eq!(send(&client, Method::DELETE, &format!("/watchlists/{id}"), None).await.unwrap(), json!({"status": "SUCCESS"}));
        assert_eq!(refused(get(&client, &format!("/watchlists/{id}"), &[]).await), (404, ApiCode::InvalidWatchlist));
        assert_eq!(refused(send(&client, Method::DELETE, &format!("/watchlists/{id}"), None).await), (404, ApiCode::NotFoundWatchlist));
    });
}
