//! The console's web server: the page, the picture as JSON, and its updates as server-sent
//! events.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::Console;

/// The page: plain HTML, CSS and JavaScript, shipped in the crate.
const PAGE: &str = include_str!("page.html");

pub(super) async fn serve(console: Console, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/", get(page))
        .route("/state", get(state))
        .route("/events", get(events))
        .with_state(console);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("console server stopped: {e}");
        }
    });
    Ok(bound)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn state(State(console): State<Console>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        console.snapshot().0,
    )
}

/// A `snapshot` event with the whole picture, then an `update` event per change. A page that
/// falls behind gets a new snapshot rather than a gap.
async fn events(
    State(console): State<Console>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (snapshot, rx) = console.snapshot();
    let first = Event::default().event("snapshot").data(snapshot);
    let stream = futures_util::stream::unfold(
        (console, rx, Some(first)),
        |(console, mut rx, first)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (console, rx, None)));
            }
            let event = match rx.recv().await {
                Ok(json) => update(&json),
                Err(RecvError::Lagged(_)) => {
                    let (snapshot, fresh) = console.snapshot();
                    rx = fresh;
                    Event::default().event("snapshot").data(snapshot)
                }
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (console, rx, None)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn update(json: &Arc<str>) -> Event {
    Event::default().event("update").data(&**json)
}
