//! The push side: one poller asks the host for a board tick at a fixed rate
//! (every [`TICK`] while a page is connected, every [`IDLE_TICK`] otherwise,
//! whatever the number of pages), folds it into the [`Board`] and broadcasts
//! one delta frame, serialised once, to every connected page.
//!
//! A page gets a snapshot on connect, then deltas with consecutive sequence
//! numbers; a page that falls behind (the broadcast lagged) gets a fresh
//! snapshot, and one that sees a gap reconnects for one. With nothing new, a
//! heartbeat frame goes out every [`HEARTBEAT`], so a page can tell a quiet
//! market from a dead stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use stratbox_engine::Command;
use stratbox_engine::board::{BarsQuery, BoardQuery, BoardTick};
use stratbox_trading::JournalReader;

use crate::projection::Board;

/// Between ticks while a page is connected: at most 10 frames a second.
pub const TICK: Duration = Duration::from_millis(100);
/// Between ticks with no page (the board stays current for REST queries and
/// the benchmark, sampled at ticks, keeps its shape).
pub const IDLE_TICK: Duration = Duration::from_millis(250);
/// A frame at least this often, changes or not.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Journal entries taken per tick (a long journal is caught up over several).
const JOURNAL_PER_TICK: usize = 20_000;
/// Frames a slow page may fall behind before it is resynchronised.
const BACKLOG: usize = 64;

pub struct Hub {
    pub board: RwLock<Board>,
    /// The sequence number of the newest frame (the board's state after it).
    seq: AtomicU64,
    frames: broadcast::Sender<(u64, Arc<str>)>,
    clients: AtomicUsize,
    next_client: AtomicU64,
    /// The instrument each page charts, by page.
    charted: Mutex<HashMap<u64, u32>>,
    commands: Mutex<Sender<Command>>,
    journal: Option<JournalReader>,
}

impl Hub {
    pub fn new(board: Board, commands: Sender<Command>, journal: Option<JournalReader>) -> Arc<Self> {
        let (frames, _) = broadcast::channel(BACKLOG);
        Arc::new(Self {
            board: RwLock::new(board),
            seq: AtomicU64::new(0),
            frames,
            clients: AtomicUsize::new(0),
            next_client: AtomicU64::new(1),
            charted: Mutex::new(HashMap::new()),
            commands: Mutex::new(commands),
            journal,
        })
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// One round trip to the event loop (served between two events).
    pub async fn ask(&self, query: BoardQuery) -> Result<BoardTick, String> {
        let (tx, rx) = oneshot::channel();
        self.commands.lock().unwrap_or_else(|e| e.into_inner()).send(Command::Board(Box::new(query), tx)).map_err(|_| "the host has stopped".to_owned())?;
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(r)) => r.map(|b| *b),
            Ok(Err(_)) => Err("the host has stopped".into()),
            Err(_) => Err("the host did not answer within 10 s".into()),
        }
    }

    /// Polls the host until it stops.
    pub async fn run_poller(self: Arc<Self>) {
        let mut last_event = None;
        let mut last_frame = Instant::now();
        loop {
            let watching = self.clients() > 0;
            tokio::time::sleep(if watching { TICK } else { IDLE_TICK }).await;
            let query = {
                let board = self.board.read().unwrap_or_else(|e| e.into_inner());
                let charted: Vec<u32> = {
                    let mut v: Vec<u32> = self.charted.lock().unwrap_or_else(|e| e.into_inner()).values().copied().collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                };
                let lead = board.bar_secs.unwrap_or(60) as i64 * 2_000_000_000;
                let bars = charted
                    .into_iter()
                    .map(|instrument| BarsQuery { instrument, after: board.bars_sent.get(&instrument).copied().unwrap_or(board.market_time - lead), count: 500 })
                    .collect();
                // With a reader, the journal is read here, off the event loop.
                let journal_limit = if self.journal.is_some() { 0 } else { JOURNAL_PER_TICK };
                BoardQuery { journal_from: board.next_seq, journal_limit, bars, mark_seen: watching }
            };
            let from = query.journal_from;
            let mut tick = match self.ask(query).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::info!(reason = %e, "dashboard: the host is gone; the stream stops");
                    return;
                }
            };
            if let Some(reader) = &self.journal {
                // After the tick: everything the tick's books reflect is committed.
                match reader.page(from, JOURNAL_PER_TICK) {
                    Ok(entries) => tick.journal = entries,
                    Err(e) => tracing::warn!(error = %e, "dashboard: cannot read the journal"),
                }
            }
            let first_unseen = tick.first_unseen_ms;
            let mut board = self.board.write().unwrap_or_else(|e| e.into_inner());
            let journal_grew = !tick.journal.is_empty();
            let changes = board.ingest(tick);
            let news = journal_grew || !changes.is_empty() || board.event_done_ms != last_event;
            if !watching || (!news && last_frame.elapsed() < HEARTBEAT) {
                continue;
            }
            // The frame is made and numbered under the board's lock, so a
            // snapshot (taken under it too) is always exactly before a frame.
            let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            let frame = board.delta(seq, &changes, first_unseen);
            drop(board);
            last_event = frame.get("event_done_ms").and_then(Value::as_i64);
            last_frame = Instant::now();
            let _ = self.frames.send((seq, Arc::from(frame.to_string())));
        }
    }

    fn snapshot(&self) -> (u64, String) {
        let board = self.board.read().unwrap_or_else(|e| e.into_inner());
        let seq = self.seq.load(Ordering::SeqCst);
        (seq, board.snapshot(seq).to_string())
    }

    /// Serves one page's socket until it closes.
    pub async fn serve_page(self: Arc<Self>, mut socket: WebSocket) {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        self.clients.fetch_add(1, Ordering::Relaxed);
        let _gone = Leave { hub: self.clone(), id };
        let mut frames = self.frames.subscribe();
        let (mut seen, snapshot) = self.snapshot();
        if socket.send(Message::Text(snapshot.into())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Ok((seq, text)) if seq > seen => {
                        seen = seq;
                        if socket.send(Message::Text((*text).into())).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        frames = self.frames.subscribe();
                        let (seq, snapshot) = self.snapshot();
                        seen = seq;
                        if socket.send(Message::Text(snapshot.into())).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => self.on_page_message(id, &text),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// `{"chart": "SYMBOL"}`: this page charts that instrument (its new bars come with the frames).
    fn on_page_message(&self, id: u64, text: &str) {
        let Ok(msg) = serde_json::from_str::<Value>(text) else { return };
        let Some(symbol) = msg.get("chart").and_then(Value::as_str) else { return };
        let board = self.board.read().unwrap_or_else(|e| e.into_inner());
        let mut charted = self.charted.lock().unwrap_or_else(|e| e.into_inner());
        match board.symbols.iter().position(|s| s == symbol) {
            Some(i) => {
                charted.insert(id, i as u32);
            }
            None => {
                charted.remove(&id);
            }
        }
    }
}

/// A page's place in the hub, given back when its socket ends.
struct Leave {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.hub.clients.fetch_sub(1, Ordering::Relaxed);
        self.hub.charted.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}
